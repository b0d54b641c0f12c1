package dev.capsule.runtime.microvm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
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
import dev.capsule.runtime.bundle.BundleCache;
import dev.capsule.runtime.bundle.BundleInputs;
import dev.capsule.runtime.bundle.RuntimeBundle;
import dev.capsule.runtime.cache.BuildCache;
import dev.capsule.runtime.envd.EnvdHealth;
import dev.capsule.runtime.envd.EnvdWarmup;
import dev.capsule.runtime.host.Command;
import dev.capsule.runtime.host.HostLock;
import dev.capsule.runtime.host.Mounts;
import dev.capsule.runtime.network.Adoption;
import dev.capsule.runtime.network.SandboxNetwork;
import dev.capsule.runtime.network.SandboxNetworks;
import dev.capsule.runtime.oci.OciRuntime;
import dev.capsule.runtime.template.Template;
import dev.capsule.runtime.template.TemplateCache;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.FutureTask;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Pattern;

/**
 * The {@code microvm} driver: each sandbox is a QEMU virtual machine (the {@code microvm} machine type; KVM where
 * configured, else TCG software emulation) booting Debian's cloud kernel, with the template's file system as a
 * copy-on-write disk, the runtime bundle as a second, read-only disk, and envd started by the guest init. The VM's
 * NIC is a tap in the sandbox's own network namespace, bridged to the namespace's veth ({@link VmNetwork}), so
 * addressing, NAT and egress policy are {@link SandboxNetworks}' as for the oci driver.
 *
 * <p>Memory snapshots make it fast. The first sandbox of a template (per vCPU count and memory size) boots a VM once,
 * waits for envd, and saves it as the template's snapshot in the cache: its RAM as a file, its device state, its
 * disk. Every sandbox is then a restore of that snapshot into a copy of its RAM file that QEMU maps shared (the
 * file is the sandbox's memory), and the guest agent gives the clone its clock, fresh entropy, address and hostname
 * ({@link GuestAgent}). Pausing with memory stops the VM, saves its device state next to the RAM file, ends QEMU and
 * flushes the files, so a paused sandbox holds no memory and survives a server restart or a host reboot; resuming
 * restores it from the same files. Pausing without memory syncs the guest's disk and ends QEMU; resuming boots the
 * VM again from its disk. {@link #snapshot} saves once into the data directory; {@link #start} accepts the
 * snapshot's id as a template and restores it, as many times as asked.
 *
 * <p>Everything it knows is on disk ({@link VmRecord}, {@link VmDirectory}) or on the host (QEMU's pid file and
 * command line, the network namespaces), so a new instance (a restarted server) finds the sandboxes of the previous
 * one. One server per data directory and network: the constructor claims both with a {@link HostLock}.
 */
public final class MicroVmRuntime implements SandboxRuntime {

    public static final String NAME = "microvm";
    public static final String BASE_TEMPLATE = OciRuntime.BASE_TEMPLATE;
    /** What {@link #pauseMode()} answers: the VM is saved to files and its process ends. */
    public static final String PAUSE_MODE = "snapshot";

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern SANDBOX_ID = Pattern.compile("[a-z0-9][a-z0-9-]{0,62}");
    private static final Duration QMP_TIMEOUT = Duration.ofSeconds(30);
    private static final Duration AGENT_TIMEOUT = Duration.ofSeconds(30);
    private static final Duration SAVE_TIMEOUT = Duration.ofSeconds(300);
    private static final Duration QUIT_GRACE = Duration.ofSeconds(15);
    /** envd warm-up rounds before a template snapshot is saved: fewer left the server's first requests slow. */
    private static final int WARMUP_ROUNDS = 8;
    /**
     * How often running VMs are looked at for idleness: one that used less than {@link #IDLE_CORES} of a core since
     * the last look gets its RAM file written back and paged out again ({@link #reclaimIdle}), so a sandbox that ran
     * work and went quiet gives back what the work touched, as a fresh one does after its create.
     */
    private static final Duration IDLE_CHECK = Duration.ofSeconds(30);
    /** An idle guest under TCG still costs ~10 % of a core (its timer and envd); a busy one far more. */
    private static final double IDLE_CORES = 0.25;
    /** Clock ticks of /proc/<pid>/stat (USER_HZ, 100 on Linux) in nanoseconds. */
    private static final long TICK_NANOS = 10_000_000L;
    /** Whether a failed {@link RamReclaim} was reported: once per server is enough, it fails alike for all VMs. */
    private static final AtomicBoolean RECLAIM_WARNED = new AtomicBoolean();
    private static final int BRING_UPS = Math.max(1, Runtime.getRuntime().availableProcessors());
    /** Bumped when the way a template snapshot is made changes, so old ones are not restored. */
    private static final int SNAPSHOT_FORMAT = 2;

    private final MicroVmConfig config;
    private final List<HostLock> claims;
    private final TemplateCache templates;
    private final BundleCache bundles;
    private final BuildCache builds;
    private final SandboxNetworks networks;
    private final RamSpares spares;
    private final String qemuVersion;
    /** Ids this instance is starting now (sandboxes, and template snapshots' VMs): not listed, not orphans. */
    private final Set<String> starting = ConcurrentHashMap.newKeySet();
    /**
     * VMs brought up (restored or booted, until envd answers) at once: one per host CPU. Under TCG a guest needs a
     * host core to get to envd in time: 20 creates at once on 2 cores took 4-32 s each, and 6 of them missed the
     * server's 10 s envd /init. The others wait their turn, in order, up to the start timeout.
     */
    private final Semaphore bringUps = new Semaphore(BRING_UPS, true);
    /** Per running sandbox, what the last idle check saw: QEMU's pid, its CPU ticks and when. */
    private final Map<String, long[]> lastLook = new ConcurrentHashMap<>();
    private final Thread idleReclaimer;
    private final Object resolveLock = new Object();
    private volatile Guest guest;

    /** The parts of every VM that do not depend on the template: kernel, initramfs, bundle disk. */
    private record Guest(GuestKernel kernel, Path bundleImage) {}

    /** A template's snapshot in the cache: RAM file, device state, disk, and the command line it booted with. */
    private record TemplateSnapshot(Path memory, Path state, Path disk, String append) {}

    /**
     * Opens the driver on this host and re-adopts what a previous instance left: the networks of running and
     * frozen sandboxes are kept with their recorded policy (and made again for frozen ones whose network a reboot
     * took), every other network of this configuration is removed.
     *
     * @throws RuntimeFailure QEMU is missing, or the host's networking could not be brought to a known state
     */
    public MicroVmRuntime(MicroVmConfig config) {
        this.config = config;
        this.claims = claimHost(config);
        try {
            this.qemuVersion = Command.run(List.of(config.qemu(), "--version"), 60).orThrow().stdout().lines()
                    .findFirst().orElse("");
            this.templates = new TemplateCache(config.cacheDir().resolve("templates"));
            this.bundles = new BundleCache(config.cacheDir().resolve("bundles"));
            this.builds = new BuildCache(config.cacheDir().resolve("microvm"));
            Files.createDirectories(sandboxesDir());
            Files.createDirectories(snapshotsDir());
            Files.createDirectories(config.home().resolve("spares"));
            this.spares = new RamSpares(config.home().resolve("spares"));
            spares.sweep(key -> Files.isDirectory(builds.root().resolve(key)));
            this.networks = SandboxNetworks.open(config.network());
            Map<String, NetworkPolicy> live = new TreeMap<>();
            Set<String> frozen = new TreeSet<>();
            for (VmRecord record : records()) {
                VmDirectory dir = directory(record.sandboxId());
                if (record.status() == VmRecord.Status.FROZEN && Files.exists(dir.state())) {
                    live.put(record.sandboxId(), record.network());
                    frozen.add(record.sandboxId());
                } else if (record.status() == VmRecord.Status.RUNNING && Qemu.running(dir).isPresent()) {
                    live.put(record.sandboxId(), record.network());
                }
            }
            Adoption adoption = networks.adopt(live);
            for (String id : frozen) {
                // a reboot took the namespace of a sandbox saved to disk: it gets a new one (maybe a new address)
                SandboxNetwork network = networks.find(id).orElseGet(() -> networks.allocate(id, live.get(id)));
                VmNetwork.attach(network);
            }
            adoption.missing().stream().filter(id -> !frozen.contains(id)).forEach(id -> System.getLogger(
                    MicroVmRuntime.class.getName()).log(System.Logger.Level.WARNING, "the VM of sandbox " + id
                    + " runs but its network namespace is gone; it is unreachable and will be removed"));
        } catch (IOException | RuntimeException e) {
            claims.forEach(HostLock::close);
            throw new RuntimeFailure("cannot open the microvm runtime on this host (data " + config.dataDir()
                    + ", network " + config.network().name() + "): " + e.getMessage(), e);
        }
        this.idleReclaimer = Thread.ofVirtual().name("microvm-idle-reclaim").start(() -> {
            try {
                while (true) {
                    Thread.sleep(IDLE_CHECK);
                    reclaimIdle();
                }
            } catch (InterruptedException e) {
                // closed
            }
        });
    }

    private static List<HostLock> claimHost(MicroVmConfig config) {
        Path dataLock = config.home().resolve(".capsule.lock");
        Path networkLock = config.network().runDirectory().resolve("network-" + config.network().name() + ".lock");
        return HostLock.claimAll(List.of(dataLock, networkLock), file -> "another Capsule server on this host"
                + " already uses data directory " + config.dataDir() + " or network '" + config.network().name()
                + "' (" + file + " is locked); stop it, or give this server its own data directory,"
                + " CAPSULE_NETWORK_NAME, CAPSULE_NETWORK_INTERFACE_PREFIX and CAPSULE_NETWORK_POOL");
    }

    @Override
    public String name() {
        return NAME;
    }

    public MicroVmConfig config() {
        return config;
    }

    /**
     * Builds what sandboxes of the base template need (the first time: the template, the bundle, the kernel, the
     * disk images and a boot of the template's VM, minutes under TCG), so the first start() need not.
     */
    public void prepare() {
        Template template = template(BASE_TEMPLATE);
        spares.refill(templateSnapshot(template, template.resources().cpuCount(), template.resources().memoryMB())
                .memory());
    }

    // --- start ---------------------------------------------------------------------------------------------

    @Override
    public SandboxInstance start(SandboxSpec spec) {
        String id = spec.sandboxId();
        if (id == null || !SANDBOX_ID.matcher(id).matches()) {
            throw new RuntimeFailure("sandbox id must be 1-63 lower-case letters, digits or '-' starting with a "
                    + "letter or digit (it is the hostname), got " + id);
        }
        Source source = source(spec);
        if (!starting.add(id)) {
            throw new RuntimeFailure("sandbox " + id + " is already being started; choose another id");
        }
        try {
            if (Files.exists(directory(id).dir()) || networks.find(id).isPresent()) {
                throw new RuntimeFailure("sandbox " + id + " already exists on this host; choose another id");
            }
            // the turn covers the RAM file's copy too: twenty copies at once kept the disk busy for seconds
            admit(id);
            try {
                return startTaken(id, spec, source);
            } finally {
                bringUps.release();
            }
        } finally {
            starting.remove(id);
        }
    }

    /**
     * What a sandbox starts from: a template snapshot in the cache, or a snapshot of a sandbox (with memory, or
     * only its disk). A snapshot fixes the VM's vCPUs and RAM (a restore needs the machine it was saved on), so
     * the snapshot's apply, whatever the spec asks.
     */
    private record Source(String templateId, int cpus, int memoryMb, Path backingDisk, String append,
                          Optional<Saved> memory, String snapshot) {}

    /** A saved VM: its RAM file (read-only; a sandbox gets a copy) and its device state. */
    private record Saved(Path ram, Path state) {}

    private Source source(SandboxSpec spec) {
        Optional<Path> snapshot = findSnapshot(spec.templateId());
        if (snapshot.isPresent()) {
            JsonNode json = readJson(snapshot.get().resolve("snapshot.json"));
            Path dir = snapshot.get();
            Optional<Saved> memory = json.path("memoryKept").asBoolean()
                    ? Optional.of(new Saved(dir.resolve("memory.ram"), dir.resolve("state"))) : Optional.empty();
            return new Source(spec.templateId(), json.path("cpus").asInt(), json.path("memoryMb").asInt(),
                    dir.resolve("disk.qcow2"), json.path("append").asText(), memory, dir.getFileName().toString());
        }
        Template template = template(spec.templateId());
        Resources resources = spec.resources() == null ? template.resources() : spec.resources();
        TemplateSnapshot golden = templateSnapshot(template, resources.cpuCount(), resources.memoryMB());
        return new Source(template.name(), resources.cpuCount(), resources.memoryMB(), golden.disk(), golden.append(),
                Optional.of(new Saved(golden.memory(), golden.state())), null);
    }

    private SandboxInstance startTaken(String id, SandboxSpec spec, Source source) {
        NetworkPolicy policy = spec.network() == null ? NetworkPolicy.OPEN : spec.network();
        VmDirectory dir = directory(id);
        SandboxNetwork network = null;
        Optional<Future<?>> ram = Optional.empty();
        boolean interrupted = false;
        try {
            Files.createDirectories(dir.dir());
            // the sandbox's own RAM file: a spare made ahead for a template snapshot, else a copy (~0.1 s for a
            // 512 MiB guest's ~190 MiB) made while its network and disk are made
            ram = source.memory().map(saved -> background(() -> {
                if (source.snapshot() != null || !spares.take(saved.ram(), dir.ram())) {
                    copySparse(saved.ram(), dir.ram());
                }
            }));
            network = networks.allocate(id, policy);
            VmNetwork.attach(network);
            Command.run(List.of(Tools.path("qemu-img"), "create", "-q", "-f", "qcow2", "-b",
                    source.backingDisk().toString(), "-F", "qcow2", dir.disk().toString()), 60).orThrow();
            Instant startedAt = Instant.now();
            String append = source.memory().isPresent() ? source.append() : appendFor(id, network);
            VmRecord record = new VmRecord(id, source.templateId(), startedAt, policy, VmRecord.Status.RUNNING,
                    source.cpus(), source.memoryMb(), append, source.snapshot());
            record.write(dir);
            Qemu.Machine machine = machine(record);
            if (ram.isPresent()) {
                await(ram.get());
                welcome(dir, network, load(dir, network, machine, source.memory().get().state()));
            } else {
                boot(dir, network, machine);
            }
            writeBackAndReclaim(dir);
            return new SandboxInstance(id, source.templateId(), network.address(), startedAt);
        } catch (IOException | RuntimeException e) {
            interrupted = Thread.interrupted();
            ram.ifPresent(copy -> copy.cancel(true));
            ram.ifPresent(MicroVmRuntime::awaitQuietly);
            RuntimeFailure failure = e instanceof RuntimeFailure f ? f
                    : new RuntimeFailure("cannot start sandbox " + id + ": " + e.getMessage(), e);
            removeQuietly(id, network != null, failure);
            throw failure;
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** Boots the VM from its disk, with a new RAM file, and waits for envd. */
    private void boot(VmDirectory dir, SandboxNetwork network, Qemu.Machine machine) throws IOException {
        Files.deleteIfExists(dir.ram());
        long pid = Qemu.launch(Qemu.command(machine, dir, dir.ram(), false), network.namespacePath(), dir,
                QMP_TIMEOUT);
        awaitEnvd(network, dir, pid, config.bootTimeout());
    }

    /**
     * Restores a saved VM into a new QEMU over the sandbox's RAM file (which holds the saved memory) and the device
     * {@code state}, and lets it run; returns QEMU's pid. Until it returns the guest has not run, so a failure
     * leaves the RAM file as it was.
     */
    private long load(VmDirectory dir, SandboxNetwork network, Qemu.Machine machine, Path state) {
        long pid = Qemu.launch(Qemu.command(machine, dir, dir.ram(), true), network.namespacePath(), dir,
                QMP_TIMEOUT);
        try (Qmp qmp = Qmp.connect(dir.qmp(), QMP_TIMEOUT)) {
            ignoreShared(qmp);
            qmp.execute("migrate-incoming", Qmp.arguments().put("uri", readFrom(state)), QMP_TIMEOUT);
            long deadline = System.nanoTime() + config.startTimeout().toNanos();
            String status;
            while ((status = qmp.execute("query-status", QMP_TIMEOUT).path("status").asText()).equals("inmigrate")) {
                if (System.nanoTime() > deadline) {
                    throw new RuntimeFailure("QEMU did not load the saved VM within " + config.startTimeout().toSeconds()
                            + " s");
                }
                Qemu.sleep(2);
            }
            if (!status.equals("paused") && !status.equals("running")) {
                throw new RuntimeFailure("QEMU could not load the saved VM (status " + status + "): "
                        + Qemu.tail(dir.qemuLog()));
            }
            if (status.equals("paused")) {
                qmp.execute("cont", QMP_TIMEOUT);
            }
            return pid;
        } catch (IOException e) {
            throw new RuntimeFailure("restoring the VM of sandbox " + network.sandboxId() + " failed: " + e.getMessage()
                    + "; QEMU: " + Qemu.tail(dir.qemuLog()), e);
        }
    }

    /**
     * Gives a restored guest the sandbox's clock, entropy and identity; returns once envd answers at the sandbox's
     * address.
     */
    private void welcome(VmDirectory dir, SandboxNetwork network, long pid) {
        try {
            GuestAgent.restore(dir.console(), network.addressText() + "/" + network.prefixLength(),
                    network.gateway().getHostAddress(), network.sandboxId(), network.nameservers(),
                    AGENT_TIMEOUT);
        } catch (IOException e) {
            throw new RuntimeFailure("the guest agent of sandbox " + network.sandboxId() + " did not answer: "
                    + e.getMessage() + "; console: " + Qemu.tail(dir.consoleLog()), e);
        }
        awaitEnvd(network, dir, pid, config.startTimeout());
    }

    private void awaitEnvd(SandboxNetwork network, VmDirectory dir, long pid, Duration timeout) {
        try {
            EnvdHealth.await(network.sandboxId(), network.address(), timeout,
                    () -> Qemu.running(dir).filter(running -> running == pid).isPresent(),
                    () -> Qemu.tail(dir.consoleLog()) + "; QEMU: " + Qemu.tail(dir.qemuLog()));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RuntimeFailure("interrupted while waiting for envd in sandbox " + network.sandboxId(), e);
        }
    }

    /**
     * Leaves RAM that is a shared file out of migrations (every VM's is: the file is the memory), on both ends: a
     * save writes only the device state, a restore reads only that. QEMU 7.2 has no command-line switch for it.
     */
    private static void ignoreShared(Qmp qmp) throws IOException {
        ObjectNode arguments = Qmp.arguments();
        arguments.putArray("capabilities").addObject().put("capability", "x-ignore-shared").put("state", true);
        qmp.execute("migrate-set-capabilities", arguments, QMP_TIMEOUT);
    }

    /**
     * Saves the running VM: stops it (its disk is flushed then, so disk and memory match) and streams its device
     * state (its RAM is its file) to
     * {@code uri}. The VM is left stopped, for the caller to end it ({@link #quit}) or let it run on ({@link #cont});
     * a failed save lets it run on.
     */
    private void save(VmDirectory dir, String uri) {
        try (Qmp qmp = Qmp.connect(dir.qmp(), QMP_TIMEOUT)) {
            ignoreShared(qmp);
            // QEMU throttles migrations to 128 MiB/s by default, for live ones; this one stops the VM first
            qmp.execute("migrate-set-parameters", Qmp.arguments().put("max-bandwidth", Long.MAX_VALUE / 2),
                    QMP_TIMEOUT);
            qmp.execute("stop", QMP_TIMEOUT);
            try {
                qmp.execute("migrate", Qmp.arguments().put("uri", uri), QMP_TIMEOUT);
                long deadline = System.nanoTime() + SAVE_TIMEOUT.toNanos();
                while (true) {
                    JsonNode migration = qmp.execute("query-migrate", QMP_TIMEOUT);
                    String status = migration.path("status").asText();
                    if (status.equals("completed")) {
                        return;
                    }
                    if (status.equals("failed") || status.equals("cancelled")) {
                        throw new IOException("saving the VM failed: " + migration.path("error-desc").asText(status));
                    }
                    if (System.nanoTime() > deadline) {
                        throw new IOException("saving the VM did not finish within " + SAVE_TIMEOUT.toSeconds() + " s");
                    }
                    Qemu.sleep(2);
                }
            } catch (IOException | RuntimeException e) {
                try {
                    qmp.execute("cont", QMP_TIMEOUT);
                } catch (IOException resume) {
                    e.addSuppressed(resume);
                }
                throw e;
            }
        } catch (IOException e) {
            throw new RuntimeFailure("cannot save the VM of sandbox " + dir.dir().getFileName() + ": "
                    + e.getMessage() + "; QEMU: " + Qemu.tail(dir.qemuLog()), e);
        }
    }

    /** Lets a stopped VM run on. */
    private static void cont(VmDirectory dir) {
        try (Qmp qmp = Qmp.connect(dir.qmp(), QMP_TIMEOUT)) {
            qmp.execute("cont", QMP_TIMEOUT);
        } catch (IOException e) {
            throw new RuntimeFailure("cannot let the VM of sandbox " + dir.dir().getFileName() + " run on: "
                    + e.getMessage(), e);
        }
    }

    // --- template snapshots ----------------------------------------------------------------------------------

    /**
     * The template's snapshot for this VM size, made now if no one has: a VM boots from the template's disk with
     * its RAM in a file, and once envd answers and has served a warm-up ({@link EnvdWarmup}), its device state is
     * saved and QEMU ends. RAM file, state and the
     * disk as it was then stay read-only in the cache.
     */
    private TemplateSnapshot templateSnapshot(Template template, int cpus, int memoryMb) {
        Guest parts = guest();
        Path rootfs = image(template);
        String key = "snapshot-" + template.name() + "-" + cpus + "x" + memoryMb + "-" + new Digest()
                .text("format=" + SNAPSHOT_FORMAT).text(qemuVersion).text(config.accelerator())
                .text(rootfs.getParent().getFileName().toString()).text(parts.kernel().hash())
                .text(parts.bundleImage().getParent().getFileName().toString())
                .text(Qemu.CPU).text(Qemu.append(0, "address", "gateway", "host", List.of())).hex();
        Path entry;
        try {
            entry = builds.ensure(key, target -> buildTemplateSnapshot(template, cpus, memoryMb, rootfs, target));
        } catch (RuntimeException e) {
            throw new RuntimeFailure("cannot make the snapshot of template " + template.name() + " (" + cpus
                    + " vCPUs, " + memoryMb + " MiB): " + e.getMessage(), e);
        }
        JsonNode json = readJson(entry.resolve("snapshot.json"));
        return new TemplateSnapshot(entry.resolve("memory.ram"), entry.resolve("state"), entry.resolve("disk.qcow2"),
                json.path("append").asText());
    }

    private void buildTemplateSnapshot(Template template, int cpus, int memoryMb, Path rootfs, Path target)
            throws IOException {
        String id = "golden-" + UUID.randomUUID().toString().substring(0, 8);
        starting.add(id);
        // QEMU's sockets need a short path, which the cache's temporary build folder is not
        VmDirectory work = new VmDirectory(config.home().resolve("build").resolve(id));
        SandboxNetwork network = null;
        Long pid = null;
        try {
            network = networks.allocate(id, NetworkPolicy.NO_INTERNET);
            VmNetwork.attach(network);
            Files.createDirectories(work.dir());
            Command.run(List.of(Tools.path("qemu-img"), "create", "-q", "-f", "qcow2", "-b", rootfs.toString(), "-F",
                    "raw", work.disk().toString()), 60).orThrow();
            String append = appendFor(id, network);
            Qemu.Machine machine = machine(cpus, memoryMb, append);
            Instant begin = Instant.now();
            pid = Qemu.launch(Qemu.command(machine, work, target.resolve("memory.ram"), false),
                    network.namespacePath(), work, QMP_TIMEOUT);
            awaitEnvd(network, work, pid, config.bootTimeout());
            Duration boot = Duration.between(begin, Instant.now());
            Instant warm = Instant.now();
            EnvdWarmup.run(network.address(), WARMUP_ROUNDS, config.bootTimeout());
            Duration warmup = Duration.between(warm, Instant.now());
            Qemu.sleep(200); // lets the guest close the warm-up's connections before it is saved
            save(work, writeTo(target.resolve("state")));
            quit(work, pid);
            pid = null;
            Files.move(work.disk(), target.resolve("disk.qcow2"));
            Files.copy(work.consoleLog(), target.resolve("console.log"));
            ObjectNode json = JSON.createObjectNode();
            json.put("template", template.name());
            json.put("templateHash", template.hash());
            json.put("cpus", cpus);
            json.put("memoryMb", memoryMb);
            json.put("append", append);
            json.put("qemu", qemuVersion);
            json.put("bootSeconds", boot.toMillis() / 1000.0);
            json.put("warmupSeconds", warmup.toMillis() / 1000.0);
            json.put("createdAt", Instant.now().toString());
            JSON.writerWithDefaultPrettyPrinter().writeValue(target.resolve("snapshot.json").toFile(), json);
            for (String file : List.of("memory.ram", "state", "disk.qcow2")) {
                Files.setPosixFilePermissions(target.resolve(file), PosixFilePermissions.fromString("r--r--r--"));
                force(target.resolve(file));
            }
        } finally {
            if (pid != null) {
                Qemu.kill(pid, work);
            }
            if (network != null) {
                networks.release(id);
            }
            Mounts.deleteTree(work.dir());
            starting.remove(id);
        }
    }

    // --- network policy ----------------------------------------------------------------------------------

    @Override
    public void applyNetworkPolicy(String sandboxId, NetworkPolicy policy) {
        VmDirectory dir = directory(requireId(sandboxId));
        VmRecord record = VmRecord.read(dir).orElseThrow(() -> new RuntimeFailure(
                "sandbox " + sandboxId + " does not exist on this host; nothing to apply the policy to"));
        if (networks.find(sandboxId).isPresent()) {
            try {
                networks.updatePolicy(sandboxId, policy);
            } catch (RuntimeException e) {
                throw new RuntimeFailure("cannot apply the network policy of sandbox " + sandboxId + ": "
                        + e.getMessage(), e);
            }
        }
        // recorded after it holds, so a restarted server (or a later resume) applies the policy in force
        record.with(policy).write(dir);
    }

    @Override
    public NetworkPolicy networkPolicy(String sandboxId) {
        return requireRecord(requireId(sandboxId)).network();
    }

    // --- pause, resume, snapshots ------------------------------------------------------------------------

    @Override
    public String pauseMode() {
        return PAUSE_MODE;
    }

    @Override
    public String pauseModeReason() {
        return "a paused microVM is saved to a file in the data directory (memory and device state)"
                + " and its QEMU process ends, so it holds no memory and survives server restarts and host reboots;"
                + " resuming restores it";
    }

    @Override
    public void pause(String sandboxId, boolean keepMemory) {
        VmDirectory dir = directory(requireId(sandboxId));
        VmRecord record = requireRecord(sandboxId);
        Optional<Long> pid = Qemu.running(dir);
        VmRecord.Status status = effectiveStatus(record, dir);
        if (keepMemory) {
            if (status == VmRecord.Status.FROZEN) {
                return;
            }
            if (status == VmRecord.Status.STOPPED) {
                throw new RuntimeFailure("cannot pause sandbox " + sandboxId + " with its memory: it is stopped"
                        + " (its memory was not kept)");
            }
            keep(dir, pid.orElseThrow());
            record.with(VmRecord.Status.FROZEN).write(dir);
            return;
        }
        if (status == VmRecord.Status.RUNNING) {
            try {
                GuestAgent.sync(dir.console(), AGENT_TIMEOUT);
            } catch (IOException e) {
                throw new RuntimeFailure("cannot pause sandbox " + sandboxId + ": its disk could not be synced ("
                        + e.getMessage() + "); it was left running", e);
            }
            quit(dir, pid.orElseThrow());
            force(dir.disk());
        }
        try {
            Files.deleteIfExists(dir.state());
            Files.deleteIfExists(dir.ram());
        } catch (IOException e) {
            throw new RuntimeFailure("cannot delete the saved memory of sandbox " + sandboxId + ": " + e.getMessage(), e);
        }
        record.with(VmRecord.Status.STOPPED).write(dir);
        networks.find(sandboxId).ifPresent(VmNetwork::abortConnections);
        networks.release(sandboxId);
    }

    @Override
    public Resumed resume(String sandboxId) {
        VmDirectory dir = directory(requireId(sandboxId));
        VmRecord record = requireRecord(sandboxId);
        VmRecord.Status status = effectiveStatus(record, dir);
        if (status == VmRecord.Status.RUNNING) {
            return new Resumed(instance(record, SandboxInstance.State.RUNNING), true);
        }
        if (!starting.add(sandboxId)) {
            throw new RuntimeFailure("sandbox " + sandboxId + " is already being resumed");
        }
        try {
            SandboxNetwork network = networks.find(sandboxId).orElse(null);
            boolean allocated = network == null;
            if (allocated) {
                network = networks.allocate(sandboxId, record.network());
            }
            VmNetwork.attach(network);
            try {
                if (status == VmRecord.Status.FROZEN) {
                    admit(sandboxId);
                    try {
                        long pid = load(dir, network, machine(record), dir.state());
                        try {
                            welcome(dir, network, pid);
                        } catch (RuntimeException e) {
                            // the guest has run, so its RAM file has moved on from the saved state: save that again
                            keepOrForget(dir, pid, e);
                            throw e;
                        }
                    } finally {
                        bringUps.release();
                    }
                    record.with(VmRecord.Status.RUNNING).write(dir);
                    Files.deleteIfExists(dir.state());
                    writeBackAndReclaim(dir);
                    return new Resumed(instance(record, SandboxInstance.State.RUNNING), true);
                }
                VmRecord booting = record.withAppend(appendFor(sandboxId, network)).with(VmRecord.Status.RUNNING);
                booting.write(dir);
                admit(sandboxId);
                try {
                    boot(dir, network, machine(booting));
                } finally {
                    bringUps.release();
                }
                return new Resumed(instance(booting, SandboxInstance.State.RUNNING), false);
            } catch (IOException | RuntimeException e) {
                RuntimeFailure failure = e instanceof RuntimeFailure f ? f
                        : new RuntimeFailure("cannot resume sandbox " + sandboxId + ": " + e.getMessage(), e);
                Qemu.running(dir).ifPresent(pid -> Qemu.kill(pid, dir));
                record.write(dir);
                if (allocated && status == VmRecord.Status.STOPPED) {
                    networks.release(sandboxId);
                }
                throw failure;
            }
        } finally {
            starting.remove(sandboxId);
        }
    }

    @Override
    public SnapshotLayer snapshot(String sandboxId, String snapshotId) {
        if (snapshotId == null || !SANDBOX_ID.matcher(snapshotId).matches()) {
            throw new RuntimeFailure("snapshot id must be 1-63 lower-case letters, digits or '-', got " + snapshotId);
        }
        VmDirectory dir = directory(requireId(sandboxId));
        VmRecord record = requireRecord(sandboxId);
        Path name = snapshotsDir().resolve(snapshotId + ".name");
        if (Files.exists(name) || BASE_TEMPLATE.equals(snapshotId)) {
            throw new RuntimeFailure("snapshot id " + snapshotId + " is taken; choose another");
        }
        Path target = snapshotsDir().resolve(UUID.randomUUID().toString());
        try {
            Files.createDirectories(target);
            VmRecord.Status status = effectiveStatus(record, dir);
            boolean memoryKept = status != VmRecord.Status.STOPPED;
            if (status == VmRecord.Status.RUNNING) {
                // the disk is copied while the VM stands still after the save, so disk and memory match
                save(dir, writeTo(target.resolve("state")));
                try {
                    copySparse(dir.ram(), target.resolve("memory.ram"));
                    copySparse(dir.disk(), target.resolve("disk.qcow2"));
                } finally {
                    cont(dir);
                }
            } else {
                if (memoryKept) {
                    copySparse(dir.ram(), target.resolve("memory.ram"));
                    Files.copy(dir.state(), target.resolve("state"));
                }
                copySparse(dir.disk(), target.resolve("disk.qcow2"));
            }
            ObjectNode json = JSON.createObjectNode();
            json.put("snapshotId", snapshotId);
            json.put("templateId", record.templateId());
            json.put("cpus", record.cpus());
            json.put("memoryMb", record.memoryMb());
            json.put("append", record.append());
            json.put("memoryKept", memoryKept);
            if (record.snapshot() != null) {
                json.put("parent", record.snapshot());
            }
            json.put("createdAt", Instant.now().toString());
            JSON.writerWithDefaultPrettyPrinter().writeValue(target.resolve("snapshot.json").toFile(), json);
            for (Path file : List.of(target.resolve("disk.qcow2"), target.resolve("memory.ram"),
                    target.resolve("state"))) {
                if (Files.exists(file)) {
                    force(file);
                }
            }
            Files.writeString(name, target.getFileName().toString());
            return new SnapshotLayer(snapshotId, allocatedBytes(target), memoryKept);
        } catch (IOException | RuntimeException e) {
            Mounts.deleteTree(target);
            throw e instanceof RuntimeFailure f ? f : new RuntimeFailure("cannot snapshot sandbox " + sandboxId
                    + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void deleteSnapshot(String snapshotId) {
        if (snapshotId == null || !SANDBOX_ID.matcher(snapshotId).matches()) {
            return;
        }
        try {
            Files.deleteIfExists(snapshotsDir().resolve(snapshotId + ".name"));
        } catch (IOException e) {
            throw new RuntimeFailure("cannot delete snapshot " + snapshotId + ": " + e.getMessage(), e);
        }
        sweepSnapshots();
    }

    /** Deletes the files of deleted snapshots that no sandbox and no other snapshot stands on any more. */
    private synchronized void sweepSnapshots() {
        Set<String> used = new HashSet<>();
        for (VmRecord record : records()) {
            if (record.snapshot() != null) {
                used.add(record.snapshot());
            }
        }
        Map<String, String> parents = new TreeMap<>();
        for (Path dir : list(snapshotsDir())) {
            String name = dir.getFileName().toString();
            if (name.endsWith(".name")) {
                used.add(readString(dir).strip());
            } else if (Files.isDirectory(dir)) {
                JsonNode parent = readJson(dir.resolve("snapshot.json")).get("parent");
                parents.put(name, parent == null ? null : parent.asText());
            }
        }
        boolean changed = true;
        Set<String> kept = new HashSet<>(used);
        while (changed) {
            changed = false;
            for (Map.Entry<String, String> snapshot : parents.entrySet()) {
                if (kept.contains(snapshot.getKey()) && snapshot.getValue() != null && kept.add(snapshot.getValue())) {
                    changed = true;
                }
            }
        }
        for (String dir : parents.keySet()) {
            if (!kept.contains(dir)) {
                Mounts.deleteTree(snapshotsDir().resolve(dir));
            }
        }
    }

    private Optional<Path> findSnapshot(String snapshotId) {
        if (snapshotId == null || !SANDBOX_ID.matcher(snapshotId).matches()) {
            return Optional.empty();
        }
        Path name = snapshotsDir().resolve(snapshotId + ".name");
        if (!Files.exists(name)) {
            return Optional.empty();
        }
        Path dir = snapshotsDir().resolve(readString(name).strip());
        return Files.isDirectory(dir) ? Optional.of(dir) : Optional.empty();
    }

    // --- usage ---------------------------------------------------------------------------------------------

    /**
     * The VM as the host accounts it: QEMU's CPU time (all vCPUs and its own threads) and resident memory
     * against the VM's RAM, and the disk overlay's allocated bytes against the disk's size.
     */
    @Override
    public Optional<ResourceUsage> usage(String sandboxId) {
        VmDirectory dir = directory(requireId(sandboxId));
        Optional<VmRecord> record = VmRecord.read(dir);
        Optional<Long> pid = Qemu.running(dir);
        if (record.isEmpty() || pid.isEmpty()) {
            return Optional.empty();
        }
        try {
            long ticks = cpuTicks(pid.get());
            long rss = 0;
            for (String line : Files.readAllLines(Path.of("/proc", String.valueOf(pid.get()), "status"))) {
                if (line.startsWith("VmRSS:")) {
                    rss = Long.parseLong(line.replaceAll("\\D", "")) * 1024;
                }
            }
            long diskUsed = allocatedBytes(dir.disk());
            long diskTotal = Long.parseLong(Command.run(List.of(Tools.path("qemu-img"), "info", "--output=json",
                    "-U", dir.disk().toString()), 30).orThrow().stdout().replaceAll("(?s).*\"virtual-size\":\\s*(\\d+).*", "$1"));
            return Optional.of(new ResourceUsage(Instant.now(), record.get().cpus(), ticks * TICK_NANOS, rss,
                    record.get().memoryMb() * 1024L * 1024, 0, diskUsed, diskTotal));
        } catch (IOException | RuntimeException e) {
            return Optional.empty(); // it ended while we looked
        }
    }

    /** The VM's serial console: the guest kernel's messages, the guest init's and envd's output. */
    @Override
    public Optional<ConsoleOutput> console(String sandboxId, long from, int maxBytes) {
        return ConsoleLog.read(directory(requireId(sandboxId)).consoleLog(), from, maxBytes);
    }

    // --- destroy, discover, orphans ------------------------------------------------------------------------

    @Override
    public void destroy(String sandboxId) {
        VmDirectory dir = directory(requireId(sandboxId));
        RuntimeFailure failure = null;
        try {
            Qemu.running(dir).ifPresent(pid -> Qemu.kill(pid, dir));
        } catch (RuntimeException e) {
            failure = new RuntimeFailure("cannot stop the VM of sandbox " + sandboxId + ": " + e.getMessage(), e);
        }
        try {
            networks.find(sandboxId).ifPresent(VmNetwork::abortConnections);
            networks.release(sandboxId);
        } catch (RuntimeException e) {
            if (failure == null) {
                failure = new RuntimeFailure("cannot remove the network of sandbox " + sandboxId + ": "
                        + e.getMessage(), e);
            } else {
                failure.addSuppressed(e);
            }
        }
        if (failure != null) {
            throw failure;
        }
        Mounts.deleteTree(dir.dir());
        sweepSnapshots();
    }

    @Override
    public List<SandboxInstance> discover() {
        List<SandboxInstance> found = new ArrayList<>();
        for (VmRecord record : records()) {
            if (starting.contains(record.sandboxId())) {
                continue;
            }
            VmDirectory dir = directory(record.sandboxId());
            switch (effectiveStatus(record, dir)) {
                case RUNNING -> networks.find(record.sandboxId()).ifPresent(network -> found.add(new SandboxInstance(
                        record.sandboxId(), record.templateId(), network.address(), record.startedAt(),
                        SandboxInstance.State.RUNNING)));
                case FROZEN -> networks.find(record.sandboxId()).ifPresent(network -> found.add(new SandboxInstance(
                        record.sandboxId(), record.templateId(), network.address(), record.startedAt(),
                        SandboxInstance.State.FROZEN)));
                case STOPPED -> found.add(new SandboxInstance(record.sandboxId(), record.templateId(), null,
                        record.startedAt(), SandboxInstance.State.STOPPED));
            }
        }
        return found;
    }

    /**
     * As {@link SandboxRuntime#removeOrphans}, and also removes what half-created sandboxes left: a directory
     * without a usable record, a network without a directory.
     */
    @Override
    public List<String> removeOrphans(Set<String> keep) {
        Set<String> usable = new TreeSet<>();
        discover().forEach(instance -> usable.add(instance.sandboxId()));
        Set<String> candidates = new TreeSet<>();
        list(sandboxesDir()).forEach(dir -> candidates.add(dir.getFileName().toString()));
        networks.list().forEach(network -> candidates.add(network.sandboxId()));
        List<String> removed = new ArrayList<>();
        for (String id : candidates) {
            if (starting.contains(id) || (keep.contains(id) && usable.contains(id))) {
                continue;
            }
            destroy(id);
            removed.add(id);
        }
        for (Path build : list(config.home().resolve("build"))) {
            if (!starting.contains(build.getFileName().toString())) {
                Mounts.deleteTree(build); // a template snapshot's boot that a crashed server left
            }
        }
        return removed;
    }

    /** Releases this process's claims; VMs keep running, and their state is on disk. */
    @Override
    public void close() {
        idleReclaimer.interrupt();
        spares.close();
        claims.forEach(HostLock::close);
    }

    // --- helpers -------------------------------------------------------------------------------------------

    /** The recorded status, corrected by what the host shows: a VM recorded running whose QEMU is gone is stopped. */
    private static VmRecord.Status effectiveStatus(VmRecord record, VmDirectory dir) {
        return switch (record.status()) {
            case RUNNING -> Qemu.running(dir).isPresent() ? VmRecord.Status.RUNNING : VmRecord.Status.STOPPED;
            // running: a resume a crash interrupted had let the guest run, so its RAM file is live
            case FROZEN -> Qemu.running(dir).isPresent() ? VmRecord.Status.RUNNING
                    : Files.exists(dir.state()) ? VmRecord.Status.FROZEN : VmRecord.Status.STOPPED;
            case STOPPED -> VmRecord.Status.STOPPED;
        };
    }

    private SandboxInstance instance(VmRecord record, SandboxInstance.State state) {
        SandboxNetwork network = networks.find(record.sandboxId()).orElseThrow(() -> new RuntimeFailure("sandbox "
                + record.sandboxId() + " has no network on this host"));
        return new SandboxInstance(record.sandboxId(), record.templateId(), network.address(), record.startedAt(),
                state);
    }

    /**
     * Pauses the running VM with its memory: stops it, saves its device state, ends QEMU and flushes RAM file, state
     * and disk to disk (what the kernel has not written back yet: {@link #writeBackAndReclaim} wrote the bulk).
     */
    private void keep(VmDirectory dir, long pid) {
        Path temp = dir.dir().resolve("state.tmp");
        save(dir, writeTo(temp));
        quit(dir, pid);
        try {
            force(dir.ram());
            force(temp);
            force(dir.disk());
            Files.move(temp, dir.state(), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | UncheckedIOException e) {
            throw new RuntimeFailure("cannot keep the saved memory of sandbox " + dir.dir().getFileName() + ": "
                    + e.getMessage(), e);
        }
    }

    /**
     * After a resume failed once the guest ran: saves the VM again so it stays paused with its memory, or, if that
     * fails too, ends it and drops the saved state (its disk stays; a resume boots it).
     */
    private void keepOrForget(VmDirectory dir, long pid, RuntimeException failure) {
        try {
            keep(dir, pid);
        } catch (RuntimeException again) {
            failure.addSuppressed(again);
            try {
                Qemu.running(dir).ifPresent(running -> Qemu.kill(running, dir));
                Files.deleteIfExists(dir.state());
            } catch (IOException | RuntimeException e) {
                failure.addSuppressed(e);
            }
        }
    }

    /**
     * Writes a VM's RAM file back to disk now rather than in the kernel's own time, so the next pause only flushes
     * what the guest wrote since, and then gives the host back the file's pages the guest is not using
     * ({@link RamReclaim}): an idle guest keeps touching only a fraction of what its restore read (a 512 MiB
     * sandbox's QEMU PSS drops from ~175 to ~135 MiB; docs/PERFORMANCE.md). A failure only means that pause flushes
     * more, or that the pages stay until the kernel reclaims them itself.
     */
    private static void writeBackAndReclaim(VmDirectory dir) {
        Thread.ofVirtual().name("flush-" + dir.dir().getFileName()).start(() -> writeBackAndPageOut(dir));
    }

    /** {@link #writeBackAndReclaim} in the calling thread; false when QEMU was gone or the page-out failed. */
    private static boolean writeBackAndPageOut(VmDirectory dir) {
        try {
            if (!Files.exists(dir.ram())) {
                return false;
            }
            force(dir.ram());
            Optional<Long> pid = Qemu.running(dir);
            if (pid.isPresent()) {
                RamReclaim.pageOut(pid.get(), dir.ram(),
                        running -> Qemu.running(dir).filter(p -> p == running).isPresent());
                return true;
            }
        } catch (RamReclaim.Failure e) {
            if (!e.gone && RECLAIM_WARNED.compareAndSet(false, true)) {
                System.getLogger(MicroVmRuntime.class.getName()).log(System.Logger.Level.WARNING,
                        "idle microVMs keep their RAM file's pages in the host's memory: " + e.getMessage()
                                + " (reported once)");
            }
        } catch (RuntimeException e) {
            // gone (destroyed meanwhile) or unflushable: the pause's own flush reports what matters
        }
        return false;
    }

    /**
     * One idle check ({@link #IDLE_CHECK}): every running VM that used less than {@link #IDLE_CORES} of a core since
     * the previous check has its RAM file written back and paged out. Returns the sandboxes it paged out.
     */
    List<String> reclaimIdle() {
        List<String> reclaimed = new ArrayList<>();
        Set<String> running = new HashSet<>();
        for (VmRecord record : records()) {
            String id = record.sandboxId();
            VmDirectory dir = directory(id);
            Optional<Long> pid = Qemu.running(dir);
            if (starting.contains(id) || record.status() != VmRecord.Status.RUNNING || pid.isEmpty()) {
                continue;
            }
            long ticks;
            try {
                ticks = cpuTicks(pid.get());
            } catch (IOException | RuntimeException e) {
                continue; // it ended while we looked
            }
            running.add(id);
            long now = System.nanoTime();
            long[] before = lastLook.put(id, new long[] {pid.get(), ticks, now});
            if (before == null || before[0] != pid.get() || now <= before[2]) {
                continue;
            }
            double cores = (ticks - before[1]) * TICK_NANOS / (double) (now - before[2]);
            if (cores < IDLE_CORES && writeBackAndPageOut(dir)) {
                reclaimed.add(id);
            }
        }
        lastLook.keySet().retainAll(running);
        return reclaimed;
    }

    /** The CPU time of process {@code pid} (user + system, all threads) in clock ticks. */
    private static long cpuTicks(long pid) throws IOException {
        String stat = Files.readString(Path.of("/proc", String.valueOf(pid), "stat"));
        String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        return Long.parseLong(fields[11]) + Long.parseLong(fields[12]); // utime + stime
    }

    /**
     * Waits for a turn to bring a VM up ({@link #bringUps}); the caller releases it.
     *
     * @throws RuntimeFailure no turn came within the start timeout
     */
    private void admit(String sandboxId) {
        try {
            if (!bringUps.tryAcquire(config.startTimeout().toMillis(), TimeUnit.MILLISECONDS)) {
                throw new RuntimeFailure("sandbox " + sandboxId + " waited " + config.startTimeout().toSeconds()
                        + " s for its turn: this host brings up " + BRING_UPS + " VMs at a time (one per CPU) and "
                        + bringUps.getQueueLength() + " more are waiting; start fewer sandboxes at once, or retry");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RuntimeFailure("interrupted while sandbox " + sandboxId + " waited for its turn to start", e);
        }
    }

    private static Future<?> background(Runnable task) {
        FutureTask<Void> future = new FutureTask<>(task, null);
        Thread.ofVirtual().start(future);
        return future;
    }

    private static void await(Future<?> future) {
        try {
            future.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RuntimeFailure("interrupted while copying a RAM file", e);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof RuntimeException cause ? cause
                    : new RuntimeFailure(e.getCause().getMessage(), e.getCause());
        }
    }

    private static void awaitQuietly(Future<?> future) {
        try {
            future.get();
        } catch (InterruptedException | ExecutionException | java.util.concurrent.CancellationException e) {
            // the start failed anyway; this only waits for the copy to stop writing
        }
    }

    /** Ends QEMU cleanly (its disk cache is flushed on the way out), killing it if it does not go. */
    private static void quit(VmDirectory dir, long pid) {
        try (Qmp qmp = Qmp.connect(dir.qmp(), QMP_TIMEOUT)) {
            qmp.execute("quit", QMP_TIMEOUT);
        } catch (IOException e) {
            // it is going away or gone: awaitExit finishes the job
        }
        Qemu.awaitExit(pid, dir, QUIT_GRACE);
    }

    private String appendFor(String hostname, SandboxNetwork network) {
        return Qemu.append(Qemu.tscKhz(), network.addressText() + "/" + network.prefixLength(), network.gateway().getHostAddress(),
                hostname, network.nameservers());
    }

    private Qemu.Machine machine(VmRecord record) {
        return machine(record.cpus(), record.memoryMb(), record.append());
    }

    private Qemu.Machine machine(int cpus, int memoryMb, String append) {
        Guest parts = guest();
        return new Qemu.Machine(config.qemu(), config.accelerator(), cpus, memoryMb, parts.kernel(),
                parts.bundleImage(), append);
    }

    /** Where QEMU writes a saved VM's device state: a plain file. */
    private static String writeTo(Path file) {
        return "exec:cat > " + quote(file);
    }

    private static String readFrom(Path file) {
        return "exec:cat " + quote(file);
    }

    /** A path for the shell QEMU runs {@code exec:} migration commands with. */
    private static String quote(Path path) {
        return "'" + path.toString().replace("'", "'\\''") + "'";
    }

    private void removeQuietly(String id, boolean releaseNetwork, RuntimeFailure failure) {
        VmDirectory dir = directory(id);
        try {
            Qemu.running(dir).ifPresent(pid -> Qemu.kill(pid, dir));
        } catch (RuntimeException e) {
            failure.addSuppressed(e);
        }
        if (releaseNetwork) {
            try {
                networks.find(id).ifPresent(VmNetwork::abortConnections);
                networks.release(id);
            } catch (RuntimeException e) {
                failure.addSuppressed(e);
            }
        }
        Mounts.deleteTree(dir.dir());
    }

    static void copySparse(Path source, Path target) {
        Command.run(List.of(Tools.path("cp"), "--sparse=always", source.toString(), target.toString()), 600).orThrow();
    }

    static void force(Path file) {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            channel.force(true);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot flush " + file + " to disk: " + e.getMessage(), e);
        }
    }

    /** Bytes a file or tree takes on disk (sparse files count what is allocated). */
    private static long allocatedBytes(Path path) {
        String du = Command.run(List.of(Tools.path("du"), "-s", "-B1", path.toString()), 60).orThrow().stdout();
        return Long.parseLong(du.strip().split("\\s+")[0]);
    }

    private Path sandboxesDir() {
        return config.home().resolve("sandboxes");
    }

    private Path snapshotsDir() {
        return config.home().resolve("snapshots");
    }

    private VmDirectory directory(String id) {
        return new VmDirectory(sandboxesDir().resolve(id));
    }

    private List<VmRecord> records() {
        List<VmRecord> records = new ArrayList<>();
        for (Path dir : list(sandboxesDir())) {
            VmRecord.read(new VmDirectory(dir)).filter(r -> r.sandboxId().equals(dir.getFileName().toString()))
                    .ifPresent(records::add);
        }
        return records;
    }

    private VmRecord requireRecord(String id) {
        return VmRecord.read(directory(id)).orElseThrow(() -> new RuntimeFailure("sandbox " + id
                + " does not exist on this host"));
    }

    static List<Path> list(Path dir) {
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        List<Path> entries = new ArrayList<>();
        try (DirectoryStream<Path> stream = Files.newDirectoryStream(dir)) {
            stream.forEach(entries::add);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + dir + ": " + e.getMessage(), e);
        }
        return entries;
    }

    private static String readString(Path file) {
        try {
            return Files.readString(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    private static JsonNode readJson(Path file) {
        try {
            return JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    private static String requireId(String id) {
        if (id == null || !SANDBOX_ID.matcher(id).matches()) {
            throw new RuntimeFailure("not a sandbox id: " + id);
        }
        return id;
    }

    // --- templates, kernel, images -------------------------------------------------------------------------

    /** The template named {@code templateId} ({@code base} only, for now), built the first time it is needed. */
    private Template template(String templateId) {
        if (!BASE_TEMPLATE.equals(templateId)) {
            throw new UnknownTemplate(templateId, "template '" + templateId + "' does not exist: the microvm driver"
                    + " has '" + BASE_TEMPLATE + "' and the snapshots taken on this server; create the sandbox from"
                    + " one of those");
        }
        return templates.base();
    }

    private Path image(Template template) {
        try {
            return GuestImages.rootfs(builds, template);
        } catch (RuntimeException e) {
            throw new RuntimeFailure("cannot build the disk image of template " + template.name() + " in "
                    + builds.root() + ": " + e.getMessage(), e);
        }
    }

    private Guest guest() {
        Guest current = guest;
        if (current == null) {
            synchronized (resolveLock) {
                if (guest == null) {
                    BundleInputs inputs = BundleInputs.ofBuild(config.envdJar(), config.execHelper());
                    try {
                        Path busybox = GuestImages.staticBusybox();
                        RuntimeBundle bundle = bundles.ensure(inputs);
                        GuestKernel kernel = GuestKernel.ensure(config.cacheDir(), builds, busybox);
                        Path bundleImage = GuestImages.bundle(builds, bundle, busybox, RuntimeBundle.envdCommandWithOptions(
                                RuntimeBundle.ENVD_JVM_OPTIONS, OciRuntime.ENVD_ARGS));
                        guest = new Guest(kernel, bundleImage);
                    } catch (RuntimeException e) {
                        throw new RuntimeFailure("cannot prepare the microVM guest (kernel, runtime bundle) in "
                                + builds.root() + ": " + e.getMessage(), e);
                    }
                }
                current = guest;
            }
        }
        return current;
    }
}
