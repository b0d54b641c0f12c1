package dev.capsule.runtime.oci;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.capsule.runtime.NetworkPolicy;
import dev.capsule.runtime.Resources;
import dev.capsule.runtime.Resumed;
import dev.capsule.runtime.RuntimeFailure;
import dev.capsule.runtime.SandboxInstance;
import dev.capsule.runtime.SandboxRuntime;
import dev.capsule.runtime.SandboxSpec;
import dev.capsule.runtime.UnknownTemplate;
import dev.capsule.runtime.bundle.BundleCache;
import dev.capsule.runtime.bundle.BundleInputs;
import dev.capsule.runtime.bundle.RuntimeBundle;
import dev.capsule.runtime.host.Command;
import dev.capsule.runtime.host.HostLock;
import dev.capsule.runtime.network.SandboxNetwork;
import dev.capsule.runtime.network.SandboxNetworks;
import dev.capsule.runtime.template.Template;
import dev.capsule.runtime.template.TemplateCache;
import dev.capsule.runtime.template.TemplateRecipe;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.ArrayList;
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
 * of the previous one: runc's state, {@code <data>/sandboxes/<id>/sandbox.json} (template, start time, network
 * policy) and the network namespaces. The constructor re-adopts the networks of running sandboxes and removes
 * those of sandboxes that are gone; {@link #removeOrphans} removes the sandboxes the server does not know. One
 * process per runc root and network uses them: the constructor claims both with a {@link HostLock}, so a second
 * server on this host fails to start instead of adopting and removing the first one's sandboxes.
 *
 * <p>Only template {@value #BASE_TEMPLATE} exists for now; it is built (minutes) the first time it is needed,
 * or by {@link #prepare()}.
 */
public final class OciRuntime implements SandboxRuntime {

    public static final String NAME = "oci";
    public static final String BASE_TEMPLATE = "base";
    /** envd's JVM flags, as bin/capsule starts it: fastest start and smallest footprint measured for envd. */
    public static final List<String> ENVD_JVM_OPTIONS = List.of("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Xms8m", "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow",
            // the helper is not beside envd.jar in the bundle, where envd would look by default
            "-Dcapsule.envd.execHelper=" + RuntimeBundle.EXEC_HELPER);
    /** envd's arguments; --forward-loopback makes servers on the sandbox's 127.0.0.1 reachable, as in E2B. */
    public static final List<String> ENVD_ARGS = List.of("--port", String.valueOf(SandboxInstance.ENVD_PORT),
            "--default-user", "user", "--forward-loopback");

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern SANDBOX_ID = Pattern.compile("[a-z0-9][a-z0-9-]{0,62}");
    private static final long HEALTH_POLL_MILLIS = 10;

    private final OciRuntimeConfig config;
    /** This process's claim on the runc root and the network, released by close(). */
    private final List<HostLock> claims;
    private final RuncRuntime runc;
    private final TemplateCache templates;
    private final BundleCache bundles;
    private final SandboxNetworks networks;
    /** Ids this instance is starting now: not taken by another start, not listed, not orphans. */
    private final Set<String> starting = ConcurrentHashMap.newKeySet();
    private final Object resolveLock = new Object();
    private volatile Template baseTemplate;
    private volatile RuntimeBundle bundle;

    /**
     * Opens the driver on this host and re-adopts what a previous instance left running: networks of running
     * sandboxes are kept with their recorded policy, networks of anything else are removed.
     *
     * @throws RuntimeFailure the host's networking could not be brought to a known state
     */
    public OciRuntime(OciRuntimeConfig config) {
        this.config = config;
        this.claims = claimHost(config);
        this.runc = new RuncRuntime(config.dataDir(), config.runcRoot(), "runc", config.cgroupParent());
        this.templates = new TemplateCache(config.cacheDir().resolve("templates"));
        this.bundles = new BundleCache(config.cacheDir().resolve("bundles"));
        try {
            this.networks = SandboxNetworks.open(config.network());
            Map<String, NetworkPolicy> live = new TreeMap<>();
            for (String id : runc.list()) {
                if (isRunning(id)) {
                    readMetadata(id).ifPresent(metadata -> live.put(id, metadata.network()));
                }
            }
            networks.adopt(live);
        } catch (RuntimeException e) {
            claims.forEach(HostLock::close);
            throw new RuntimeFailure("cannot open the oci runtime on this host (runc root " + config.runcRoot()
                    + ", network " + config.network().name() + "): " + e.getMessage(), e);
        }
    }

    /**
     * Claims the runc root and the sandbox network for this process: a second server on the same ones would adopt
     * and remove this one's sandboxes.
     */
    private static List<HostLock> claimHost(OciRuntimeConfig config) {
        List<HostLock> claims = new ArrayList<>();
        // Inside the runc root (runc lists directories only), so it goes when the root goes.
        Path runcLock = config.runcRoot().resolve(".capsule.lock");
        Path networkLock = config.network().runDirectory().resolve("network-" + config.network().name() + ".lock");
        for (Path file : List.of(runcLock, networkLock)) {
            Optional<HostLock> claim;
            try {
                claim = HostLock.tryAcquire(file);
            } catch (IOException e) {
                claims.forEach(HostLock::close);
                throw new RuntimeFailure("cannot create the lock file " + file + ": " + e.getMessage(), e);
            }
            if (claim.isEmpty()) {
                claims.forEach(HostLock::close);
                throw new RuntimeFailure("another Capsule server on this host already uses runc root "
                        + config.runcRoot() + " and network '" + config.network().name() + "' (" + file
                        + " is locked); stop it, or give this server its own CAPSULE_RUNC_ROOT, CAPSULE_NETWORK_NAME,"
                        + " CAPSULE_NETWORK_INTERFACE_PREFIX and CAPSULE_NETWORK_POOL");
            }
            claims.add(claim.get());
        }
        return List.copyOf(claims);
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
        template(BASE_TEMPLATE);
        bundle();
    }

    @Override
    public SandboxInstance start(SandboxSpec spec) {
        String id = spec.sandboxId();
        if (id == null || !SANDBOX_ID.matcher(id).matches()) {
            throw new RuntimeFailure("sandbox id must be 1-63 lower-case letters, digits or '-' starting with a "
                    + "letter or digit (it is the hostname), got " + id);
        }
        Template template = template(spec.templateId());
        RuntimeBundle runtimeBundle = bundle();
        if (!starting.add(id)) {
            throw new RuntimeFailure("sandbox " + id + " is already being started; choose another id");
        }
        try {
            if (Files.exists(runc.directory(id).dir()) || networks.find(id).isPresent()) {
                throw new RuntimeFailure("sandbox " + id + " already exists on this host; choose another id");
            }
            return startTaken(id, spec, template, runtimeBundle);
        } finally {
            starting.remove(id);
        }
    }

    private SandboxInstance startTaken(String id, SandboxSpec spec, Template template, RuntimeBundle runtimeBundle) {
        NetworkPolicy policy = spec.network() == null ? NetworkPolicy.OPEN : spec.network();
        Resources resources = spec.resources() == null ? template.resources() : spec.resources();
        SandboxNetwork network = null;
        Sandbox container = null;
        boolean interrupted = false;
        try {
            network = networks.allocate(id, policy);
            ContainerSpec containerSpec = new ContainerSpec(id, template, runtimeBundle,
                    Optional.of(network.namespacePath()), RuntimeBundle.envdCommand(ENVD_JVM_OPTIONS, ENVD_ARGS),
                    Map.of(), new ResourceLimits(resources.cpuCount(), resources.memoryMB(), config.pidsMax()),
                    network.nameservers());
            container = runc.start(containerSpec);
            Instant startedAt = Instant.now();
            writeMetadata(new Metadata(id, template.name(), startedAt, policy));
            awaitHealthy(container, network);
            return new SandboxInstance(id, template.name(), network.address(), startedAt);
        } catch (RuntimeException | InterruptedException e) {
            // Cleanup runs host commands; an interrupt flag would make each of them fail at once.
            interrupted = e instanceof InterruptedException || Thread.interrupted();
            RuntimeFailure failure = e instanceof RuntimeFailure f ? f
                    : new RuntimeFailure("cannot start sandbox " + id + ": " + describe(e), e);
            if (container != null) {
                try {
                    runc.delete(id);
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

    /** Waits until envd answers 204 at {@code /health}, failing early with the console log if the sandbox dies. */
    private void awaitHealthy(Sandbox container, SandboxNetwork network) throws InterruptedException {
        InetSocketAddress envd = new InetSocketAddress(network.address(), SandboxInstance.ENVD_PORT);
        long deadline = System.nanoTime() + config.startTimeout().toNanos();
        String last = "no answer yet";
        while (true) {
            try {
                int status = healthStatus(envd);
                if (status == 204) {
                    return;
                }
                last = "GET /health answered " + status;
            } catch (IOException e) {
                last = e.getMessage();
            }
            if (!alive(container.pid())) {
                throw new RuntimeFailure("envd in sandbox " + container.id() + " exited before answering /health ("
                        + last + "); console log: " + RuncRuntime.logTail(container.directory()));
            }
            if (System.nanoTime() > deadline) {
                throw new RuntimeFailure("envd in sandbox " + container.id() + " did not answer /health at " + envd
                        + " within " + config.startTimeout().toSeconds() + " s (" + last + "); console log: "
                        + RuncRuntime.logTail(container.directory()));
            }
            Thread.sleep(HEALTH_POLL_MILLIS);
        }
    }

    /** One plain HTTP/1.1 request on a fresh connection: nothing pooled that outlives the sandbox. */
    private static int healthStatus(InetSocketAddress envd) throws IOException {
        try (Socket socket = new Socket()) {
            socket.connect(envd, 1000);
            socket.setSoTimeout(2000);
            OutputStream out = socket.getOutputStream();
            out.write(("GET /health HTTP/1.1\r\nHost: " + envd.getHostString() + ":" + envd.getPort()
                    + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.flush();
            String statusLine = new BufferedReader(new InputStreamReader(socket.getInputStream(),
                    StandardCharsets.US_ASCII)).readLine();
            if (statusLine == null || !statusLine.startsWith("HTTP/1.") || statusLine.length() < 12) {
                throw new IOException("envd closed the connection without an HTTP status (" + statusLine + ")");
            }
            return Integer.parseInt(statusLine.substring(9, 12));
        }
    }

    /** Whether the host process {@code pid} (the sandbox's init) still runs: not gone, not a zombie. */
    private static boolean alive(int pid) {
        try {
            String stat = Files.readString(Path.of("/proc", String.valueOf(pid), "stat"));
            char state = stat.charAt(stat.lastIndexOf(')') + 2);
            return state != 'Z' && state != 'X';
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    @Override
    public void applyNetworkPolicy(String sandboxId, NetworkPolicy policy) {
        Metadata metadata = readMetadata(requireId(sandboxId)).orElseThrow(() -> new RuntimeFailure(
                "sandbox " + sandboxId + " does not exist on this host; nothing to apply the policy to"));
        try {
            networks.updatePolicy(sandboxId, policy);
        } catch (RuntimeException e) {
            throw new RuntimeFailure("cannot apply the network policy of sandbox " + sandboxId + ": "
                    + e.getMessage(), e);
        }
        // recorded after it holds, so a restarted server re-applies the policy that was in force
        writeMetadata(new Metadata(sandboxId, metadata.templateId(), metadata.startedAt(), policy));
    }

    /**
     * What {@link #pauseMode()} answers: CRIU cannot checkpoint on the hosts we measured (OCI-NOTES.md), so memory
     * stays in RAM under a frozen cgroup; hibernating to disk with CRIU after a start-up self-test comes later.
     */
    public static final String PAUSE_MODE = "freeze";

    @Override
    public String pauseMode() {
        return PAUSE_MODE;
    }

    /**
     * Freezes the sandbox's cgroup (runc pause: the v1 freezer or cgroup.freeze on v2), then flushes its upper
     * dir's file system (syncfs). Freezing first means no write can land after the flush, so everything the
     * sandbox wrote before the pause is on disk when this returns. If the flush fails the sandbox is thawed again.
     */
    @Override
    public void pause(String sandboxId, boolean keepMemory) {
        requireId(sandboxId);
        if (!keepMemory) {
            throw new RuntimeFailure("the oci driver cannot pause sandbox " + sandboxId + " without its memory yet");
        }
        ContainerState.Status status = status(sandboxId);
        if (status == ContainerState.Status.RUNNING) {
            try {
                runc.pause(sandboxId);
            } catch (RuntimeException e) {
                throw new RuntimeFailure("cannot freeze sandbox " + sandboxId + ": " + e.getMessage(), e);
            }
        } else if (status != ContainerState.Status.PAUSED) {
            throw new RuntimeFailure("cannot pause sandbox " + sandboxId + ": it is " + status.name().toLowerCase(java.util.Locale.ROOT)
                    + ", not running");
        }
        Path upper = runc.directory(sandboxId).upper();
        var flushed = Command.run(List.of("sync", "-f", upper.toString()), 60);
        if (!flushed.ok()) {
            RuntimeFailure failure = new RuntimeFailure("cannot flush the files of sandbox " + sandboxId + " ("
                    + upper + ") to disk: " + flushed.stderr().strip() + "; the sandbox was left running");
            try {
                runc.resume(sandboxId);
            } catch (RuntimeException e) {
                failure.addSuppressed(e);
            }
            throw failure;
        }
    }

    @Override
    public Resumed resume(String sandboxId) {
        requireId(sandboxId);
        ContainerState.Status status = status(sandboxId);
        if (status == ContainerState.Status.RUNNING) {
            return new Resumed(instance(sandboxId, SandboxInstance.State.RUNNING), true);
        }
        if (status != ContainerState.Status.PAUSED) {
            throw new RuntimeFailure("cannot resume sandbox " + sandboxId + ": it is " + status.name().toLowerCase(java.util.Locale.ROOT)
                    + " (its memory was not kept); kill it and create a new one");
        }
        try {
            runc.resume(sandboxId);
        } catch (RuntimeException e) {
            throw new RuntimeFailure("cannot thaw sandbox " + sandboxId + ": " + e.getMessage(), e);
        }
        return new Resumed(instance(sandboxId, SandboxInstance.State.RUNNING), true);
    }

    /** The sandbox as recorded on disk and in its network, in {@code state}. */
    private SandboxInstance instance(String id, SandboxInstance.State state) {
        Metadata metadata = readMetadata(id).orElseThrow(() -> new RuntimeFailure("sandbox " + id
                + " has no record on this host"));
        SandboxNetwork network = networks.find(id).orElseThrow(() -> new RuntimeFailure("sandbox " + id
                + " has no network on this host"));
        return new SandboxInstance(id, metadata.templateId(), network.address(), metadata.startedAt(), state);
    }

    /** runc's status of the sandbox; STOPPED when runc does not know it. */
    private ContainerState.Status status(String id) {
        try {
            return runc.state(id).map(ContainerState::status).orElse(ContainerState.Status.STOPPED);
        } catch (RuntimeException e) {
            throw new RuntimeFailure("cannot read the state of sandbox " + id + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void destroy(String sandboxId) {
        requireId(sandboxId);
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
        if (failure != null) {
            throw failure;
        }
    }

    @Override
    public List<SandboxInstance> discover() {
        List<SandboxInstance> found = new ArrayList<>();
        for (String id : runc.list()) {
            if (starting.contains(id)) {
                continue;
            }
            Optional<ContainerState.Status> status;
            try {
                status = runc.state(id).map(ContainerState::status);
            } catch (RuntimeException e) {
                continue;
            }
            boolean paused = status.equals(Optional.of(ContainerState.Status.PAUSED));
            if (!paused && !status.equals(Optional.of(ContainerState.Status.RUNNING))) {
                continue;
            }
            Optional<Metadata> metadata = readMetadata(id);
            Optional<SandboxNetwork> network = networks.find(id);
            if (metadata.isPresent() && network.isPresent()) {
                found.add(new SandboxInstance(id, metadata.get().templateId(), network.get().address(),
                        metadata.get().startedAt(), paused ? SandboxInstance.State.FROZEN : SandboxInstance.State.RUNNING));
            }
        }
        return found;
    }

    /**
     * As {@link SandboxRuntime#removeOrphans}, and also removes what half-created sandboxes left: a container
     * directory without a running container, a network without a container.
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

    // --- templates and the bundle -------------------------------------------------------------------------

    private Template template(String templateId) {
        if (!BASE_TEMPLATE.equals(templateId)) {
            throw new UnknownTemplate(templateId, "template '" + templateId + "' does not exist: the oci driver has "
                    + "only '" + BASE_TEMPLATE + "' for now; create the sandbox from '" + BASE_TEMPLATE + "'");
        }
        Template template = baseTemplate;
        if (template == null) {
            synchronized (resolveLock) {
                if (baseTemplate == null) {
                    try {
                        baseTemplate = templates.ensure(TemplateRecipe.base());
                    } catch (RuntimeException e) {
                        throw new RuntimeFailure("cannot build the base template in " + templates.dir() + ": "
                                + e.getMessage(), e);
                    }
                }
                template = baseTemplate;
            }
        }
        return template;
    }

    private RuntimeBundle bundle() {
        RuntimeBundle current = bundle;
        if (current == null) {
            synchronized (resolveLock) {
                if (bundle == null) {
                    for (Path file : List.of(config.envdJar(), config.execHelper())) {
                        if (!Files.isRegularFile(file)) {
                            throw new RuntimeFailure("envd build output " + file + " is missing: build envd with "
                                    + "`./mvnw -pl envd -am package`, set CAPSULE_HOME to the repository, or "
                                    + "configure the envd jar and exec helper paths");
                        }
                    }
                    try {
                        bundle = bundles.ensure(BundleInputs.of(config.envdJar(), config.execHelper()));
                    } catch (RuntimeException e) {
                        throw new RuntimeFailure("cannot build the runtime bundle in " + bundles.dir() + ": "
                                + e.getMessage(), e);
                    }
                }
                current = bundle;
            }
        }
        return current;
    }

    // --- state on disk ------------------------------------------------------------------------------------

    /** What a restarted driver needs to know about a sandbox that the host does not tell it. */
    private record Metadata(String sandboxId, String templateId, Instant startedAt, NetworkPolicy network) {}

    private void writeMetadata(Metadata metadata) {
        SandboxDirectory dir = runc.directory(metadata.sandboxId());
        ObjectNode json = JSON.createObjectNode();
        json.put("sandboxId", metadata.sandboxId());
        json.put("templateId", metadata.templateId());
        json.put("startedAt", metadata.startedAt().toString());
        ObjectNode network = json.putObject("network");
        network.put("internetAccess", metadata.network().internetAccess());
        metadata.network().allowOut().forEach(network.putArray("allowOut")::add);
        metadata.network().denyOut().forEach(network.putArray("denyOut")::add);
        NetworkPolicy.EgressProxy proxy = metadata.network().egressProxy();
        if (proxy != null) {
            network.putObject("egressProxy").put("address", proxy.address()).put("username", proxy.username())
                    .put("password", proxy.password());
        }
        Path temp = dir.dir().resolve(".sandbox.json.tmp");
        try {
            JSON.writeValue(temp.toFile(), json);
            Files.move(temp, dir.metadata(), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new RuntimeFailure("cannot record sandbox " + metadata.sandboxId() + " in " + dir.metadata() + ": "
                    + e.getMessage(), e);
        }
    }

    private Optional<Metadata> readMetadata(String id) {
        Path file = runc.directory(id).metadata();
        try {
            JsonNode json = JSON.readTree(file.toFile());
            JsonNode network = json.path("network");
            List<String> allow = new ArrayList<>();
            network.path("allowOut").forEach(node -> allow.add(node.asText()));
            List<String> deny = new ArrayList<>();
            network.path("denyOut").forEach(node -> deny.add(node.asText()));
            JsonNode proxy = network.path("egressProxy");
            return Optional.of(new Metadata(id, json.path("templateId").asText(),
                    Instant.parse(json.path("startedAt").asText()),
                    new NetworkPolicy(network.path("internetAccess").asBoolean(true), allow, deny,
                            proxy.isObject() ? new NetworkPolicy.EgressProxy(proxy.path("address").asText(),
                                    proxy.path("username").textValue(), proxy.path("password").textValue()) : null)));
        } catch (IOException | RuntimeException e) {
            return Optional.empty(); // not recorded (half-created) or damaged: not a usable sandbox
        }
    }

    private boolean isRunning(String id) {
        try {
            return runc.state(id).map(state -> state.status() == ContainerState.Status.RUNNING
                    || state.status() == ContainerState.Status.PAUSED).orElse(false);
        } catch (RuntimeException e) {
            return false;
        }
    }

    private static String requireId(String id) {
        if (id == null || !SANDBOX_ID.matcher(id).matches()) {
            throw new RuntimeFailure("not a sandbox id: " + id);
        }
        return id;
    }
}
