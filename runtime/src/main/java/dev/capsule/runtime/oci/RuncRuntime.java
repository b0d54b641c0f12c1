package dev.capsule.runtime.oci;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.capsule.runtime.cgroup.Cgroups;
import dev.capsule.runtime.host.Command;
import dev.capsule.runtime.host.Mounts;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;

/**
 * Sandboxes as runc containers: start (overlay root filesystem, generated config, {@code runc run --detach}),
 * state, signals, freeze/thaw, and delete that leaves nothing behind — no container in runc's state directory,
 * no mount, no cgroup, no files. We mount the overlay ourselves rather than asking runc to: runc only takes a
 * directory as the root, and owning the mount lets the upper dir outlive a stopped container ({@link #stop} and
 * {@link #restart}: pause to disk, a host reboot; snapshots) and lets cleanup find and remove it after a crash.
 *
 * <p>All state is on disk (runc's root and {@code <data dir>/sandboxes}), so a restarted process sees the
 * sandboxes of the previous one in {@link #list()}.
 */
public final class RuncRuntime {

    public static final Path DEFAULT_RUNC_ROOT = Path.of("/run/capsule/runc");
    /** Relative: under the cgroups of the process that runs runc, so a limit on the server bounds its sandboxes. */
    public static final String DEFAULT_CGROUP_PARENT = "capsule";

    private static final System.Logger LOG = System.getLogger(RuncRuntime.class.getName());
    /** Serializes binding the sandboxes directory with mounting disks below it (in any instance of this process). */
    private static final Object MOUNT_LOCK = new Object();
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long RUNC_TIMEOUT_SECONDS = 60;
    private static final int FREEZE_ATTEMPTS = 5;

    private final Path sandboxesDir;
    private final Path runcRoot;
    private final String runc;
    private final String cgroupParent;

    /**
     * @param dataDir      sandboxes' files go to {@code <dataDir>/sandboxes/<id>}
     * @param runcRoot     runc's state directory (its --root); only our containers live there
     * @param runc         the runc binary
     * @param cgroupParent cgroup under which each sandbox gets {@code <parent>/<id>} (relative to runc's own
     *                     cgroups unless it starts with '/')
     */
    public RuncRuntime(Path dataDir, Path runcRoot, String runc, String cgroupParent) {
        this.sandboxesDir = dataDir.toAbsolutePath().normalize().resolve("sandboxes");
        this.runcRoot = runcRoot.toAbsolutePath().normalize();
        this.runc = runc;
        this.cgroupParent = cgroupParent;
    }

    public RuncRuntime(Path dataDir) {
        this(dataDir, DEFAULT_RUNC_ROOT, "runc", DEFAULT_CGROUP_PARENT);
    }

    public SandboxDirectory directory(String id) {
        return new SandboxDirectory(sandboxesDir.resolve(requireId(id)));
    }

    public String cgroupsPath(String id) {
        return cgroupParent + "/" + requireId(id);
    }

    /** Creates and starts the sandbox; returns once its init runs. On failure nothing of it is left. */
    public Sandbox start(ContainerSpec spec) {
        String id = spec.id();
        SandboxDirectory dir = directory(id);
        try {
            Files.createDirectories(sandboxesDir);
            Files.createDirectory(dir.dir()); // fails if the id is taken: never reuse another sandbox's files
        } catch (java.nio.file.FileAlreadyExistsException e) {
            throw new IllegalStateException("sandbox " + id + " already exists in " + sandboxesDir
                    + "; delete it first or choose another id", e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create " + dir.dir() + ": " + e.getMessage(), e);
        }
        try {
            return prepareAndRun(spec, dir);
        } catch (RuntimeException e) {
            try {
                delete(id);
            } catch (RuntimeException cleanup) {
                e.addSuppressed(cleanup);
            }
            throw e;
        }
    }

    /**
     * Starts a stopped sandbox again on the files it kept (its upper dir, the writes of its previous runs): mounts
     * the overlay over them, writes its config afresh (the bundle or limits may have changed) and runs it. On
     * failure it is stopped again, its files kept.
     *
     * @throws IllegalStateException the sandbox has no files here, or still runs
     */
    public Sandbox restart(ContainerSpec spec) {
        String id = spec.id();
        SandboxDirectory dir = directory(id);
        if (!dir.keepsFiles()) {
            throw new IllegalStateException("sandbox " + id + " has no files in " + dir.dir() + " to restart from");
        }
        if (state(id).isPresent()) {
            throw new IllegalStateException("sandbox " + id + " still has a container in runc; stop it first");
        }
        try {
            return prepareAndRun(spec, dir);
        } catch (RuntimeException e) {
            try {
                stop(id);
            } catch (RuntimeException cleanup) {
                e.addSuppressed(cleanup);
            }
            throw e;
        }
    }

    private Sandbox prepareAndRun(ContainerSpec spec, SandboxDirectory dir) {
        String id = spec.id();
        prepare(spec, dir);
        run(id, dir);
        ContainerState state = state(id).orElseThrow(() -> new IllegalStateException(
                "runc reported sandbox " + id + " started but does not know it; log: " + logTail(dir)));
        return new Sandbox(id, dir, cgroupsPath(id), state.pid());
    }

    /** Writes the sandbox's files (those it already has are kept), mounts its overlay and writes its config. */
    private void prepare(ContainerSpec spec, SandboxDirectory dir) {
        for (Path lower : spec.lowerDirs()) {
            if (!Files.isDirectory(lower)) {
                throw new IllegalStateException("a layer of sandbox " + spec.id() + " (template "
                        + spec.template().name() + ") is missing: " + lower + " is not a directory");
            }
        }
        try {
            if (dir.hasOwnDisk()) {
                if (!Files.exists(dir.disk())) {
                    createDisk(dir.disk(), spec.limits().diskSizeMB());
                }
                mountDisk(dir);
            }
            Files.createDirectories(dir.upper());
            Files.createDirectories(dir.work());
            Files.createDirectories(dir.rootfs());
            Files.createDirectories(dir.hosts().getParent());
            Files.writeString(dir.hosts(), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                    + "127.0.1.1\t" + spec.id() + "\n");
            Files.writeString(dir.hostname(), spec.id() + "\n");
            StringBuilder resolv = new StringBuilder();
            spec.nameservers().forEach(ns -> resolv.append("nameserver ").append(ns).append('\n'));
            Files.writeString(dir.resolvConf(), resolv.toString());
            // appended to: a restarted sandbox's log keeps what its previous run printed before it stopped
            Files.write(dir.log(), new byte[0], StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            Mounts.mountOverlay(spec.lowerDirs(), dir.upper(), dir.work(), dir.rootfs());
            JSON.writerWithDefaultPrettyPrinter().writeValue(dir.config().toFile(),
                    OciConfig.build(spec, dir, cgroupsPath(spec.id()), swapAccounting()));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot prepare sandbox " + spec.id() + " in " + dir.dir() + ": "
                    + e.getMessage(), e);
        }
    }

    /**
     * Makes the sandbox's disk: a sparse file of {@code sizeMB} with an ext4 file system. It takes no more on the
     * host than what is written to it (the journal and inode tables are holes until used), and the sandbox gets
     * ENOSPC at its size. 1 inode per 8 KiB (not ext4's 16 KiB) as a sandbox's files are many and small (a
     * node_modules); no blocks reserved for root, who is every sandbox's administrator.
     */
    private static void createDisk(Path disk, int sizeMB) throws IOException {
        try (RandomAccessFile file = new RandomAccessFile(disk.toFile(), "rw")) {
            file.setLength(sizeMB * 1024L * 1024L);
        }
        Command.run(List.of("mkfs.ext4", "-q", "-F", "-m", "0", "-i", "8192", "-E",
                "lazy_itable_init=0,lazy_journal_init=1", disk.toString()), RUNC_TIMEOUT_SECONDS).orThrow();
    }

    /**
     * Mounts the sandbox's disk (a loop device, detached again when it is unmounted) unless it is mounted, below
     * the sandboxes directory made a shared mount first ({@link Mounts#share}: so that copies of the mount in
     * other processes' mount namespaces go when it is unmounted, instead of keeping the loop device).
     */
    private void mountDisk(SandboxDirectory dir) throws IOException {
        synchronized (MOUNT_LOCK) {
            if (!Mounts.isMountPoint(dir.diskMount())) {
                Mounts.share(sandboxesDir);
                Files.createDirectories(dir.diskMount());
                Command.check("mount", "-o", "loop", dir.disk().toString(), dir.diskMount().toString());
            }
        }
    }

    /**
     * Runs {@code action} with the files of stopped sandbox {@code id} readable at {@link SandboxDirectory#upper()}:
     * its disk mounted for the time, unless it was.
     */
    public void withFiles(String id, Runnable action) {
        SandboxDirectory dir = directory(id);
        boolean mounted = !dir.hasOwnDisk() || Mounts.isMountPoint(dir.diskMount());
        if (!mounted) {
            try {
                mountDisk(dir);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot mount the disk of sandbox " + id + ": " + e.getMessage(), e);
            }
        }
        try {
            action.run();
        } finally {
            if (!mounted) {
                unmount(id, dir.diskMount());
            }
        }
    }

    private void run(String id, SandboxDirectory dir) {
        // The container inherits runc's stdio: pointing it at the log file (not a pipe) keeps the sandbox's
        // output after runc exits, and keeps no descriptor of ours in the sandbox.
        List<String> command = List.of(runc, "--root", runcRoot.toString(), "run", "--detach",
                "--bundle", dir.dir().toString(), id);
        try {
            Process process = new ProcessBuilder(command)
                    .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(dir.log().toFile()))
                    .redirectError(ProcessBuilder.Redirect.appendTo(dir.log().toFile()))
                    .start();
            if (!process.waitFor(RUNC_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                throw new IllegalStateException("runc run of sandbox " + id + " did not return within "
                        + RUNC_TIMEOUT_SECONDS + " s; log: " + logTail(dir));
            }
            if (process.exitValue() != 0) {
                throw new IllegalStateException("runc could not start sandbox " + id + " (exit "
                        + process.exitValue() + "): " + logTail(dir));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot run " + runc + " (is runc installed?): " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while starting sandbox " + id, e);
        }
    }

    /** The container's state, or empty if runc does not know it (never created, or deleted). */
    public Optional<ContainerState> state(String id) {
        Command.Result result = runc("state", requireId(id));
        if (!result.ok()) {
            if (result.stderr().contains("does not exist") || result.stderr().contains("not exist")) {
                return Optional.empty();
            }
            result.orThrow();
        }
        try {
            JsonNode state = JSON.readTree(result.stdout());
            return Optional.of(new ContainerState(id,
                    ContainerState.Status.valueOf(state.path("status").asText().toUpperCase(Locale.ROOT)),
                    state.path("pid").asInt()));
        } catch (IOException e) {
            throw new IllegalStateException("runc state of " + id + " printed unreadable JSON: " + result.stdout(), e);
        }
    }

    /** Sends {@code signal} (e.g. "TERM", "KILL") to the sandbox's init. */
    public void kill(String id, String signal) {
        runc("kill", requireId(id), signal).orThrow();
    }

    /**
     * Freezes every process of the sandbox (cgroup freezer); memory stays, CPU is released. runc gives up ("unable
     * to freeze") when the v1 freezer stays FREEZING for a few hundred milliseconds, as it does while a process of
     * the sandbox sleeps uninterruptibly in I/O on a loaded host; it thaws again then, so this tries a few times.
     */
    public void pause(String id) {
        requireId(id);
        Command.Result result = runc("pause", id);
        for (int attempt = 1; !result.ok() && result.stderr().contains("unable to freeze")
                && attempt < FREEZE_ATTEMPTS; attempt++) {
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            result = runc("pause", id);
        }
        result.orThrow();
    }

    public void resume(String id) {
        runc("resume", requireId(id)).orThrow();
    }

    /**
     * Stops the sandbox and releases everything of it but its files: kills its processes, deletes the runc
     * container and its cgroup, unmounts its overlay and its disk. Its upper dir and the rest of its directory stay, for
     * {@link #restart}. Idempotent, and works on half-created sandboxes and on those a host reboot ended.
     */
    public void stop(String id) {
        requireId(id);
        Command.Result result = runc("delete", "--force", id);
        if (!result.ok() && !result.stderr().contains("does not exist") && !result.stderr().contains("not exist")) {
            result.orThrow();
        }
        unmount(id, directory(id).dir());
        // runc removes the cgroup; if a previous crash left an empty one, remove it (rmdir only removes empty ones)
        for (Path cgroup : Cgroups.existing(cgroupsPath(id))) {
            try {
                Files.deleteIfExists(cgroup);
            } catch (IOException e) {
                throw new UncheckedIOException("sandbox " + id + " left cgroup " + cgroup
                        + " that cannot be removed (processes still in it?): " + e.getMessage(), e);
            }
        }
    }

    /** Unmounts what is mounted at or below {@code path} of sandbox {@code id}. */
    private static void unmount(String id, Path path) {
        List<String> attached = Mounts.unmountAll(path);
        if (!attached.isEmpty()) {
            LOG.log(System.Logger.Level.WARNING, "the disk of sandbox " + id + " stays attached to " + attached
                    + ": a process in another mount namespace holds a private copy of its mount (see `grep " + id
                    + " /proc/*/mountinfo`); it is released when that process exits");
        }
    }

    /**
     * Removes the sandbox entirely: {@link #stop}s it and deletes its files, upper dir included. Idempotent, and
     * works on half-created sandboxes.
     */
    public void delete(String id) {
        stop(id);
        Mounts.deleteTree(directory(id).dir());
        synchronized (MOUNT_LOCK) {
            Mounts.unshare(sandboxesDir); // with the last sandbox, so that nothing of ours stays mounted
        }
    }

    /** Ids of all sandboxes this runtime has on disk or in runc, including half-created ones. */
    public List<String> list() {
        TreeSet<String> ids = new TreeSet<>();
        Command.Result result = runc("list", "--quiet");
        if (result.ok()) {
            result.stdout().lines().filter(line -> !line.isBlank()).forEach(ids::add);
        }
        if (Files.isDirectory(sandboxesDir)) {
            try (DirectoryStream<Path> stream = Files.newDirectoryStream(sandboxesDir)) {
                stream.forEach(path -> ids.add(path.getFileName().toString()));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return new ArrayList<>(ids);
    }

    private Command.Result runc(String... args) {
        List<String> command = new ArrayList<>(List.of(runc, "--root", runcRoot.toString()));
        command.addAll(List.of(args));
        return Command.run(command, RUNC_TIMEOUT_SECONDS);
    }

    private static boolean swapAccounting() {
        return switch (Cgroups.detect()) {
            case V2 -> true;
            case V1, HYBRID -> Files.exists(Path.of("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"));
        };
    }

    static String logTail(SandboxDirectory dir) {
        try {
            String log = Files.readString(dir.log()).strip();
            return log.length() <= 2000 ? log : "..." + log.substring(log.length() - 2000);
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    private static String requireId(String id) {
        if (id == null || !id.matches("[a-z0-9][a-z0-9-]{0,62}")) {
            throw new IllegalArgumentException("not a sandbox id: " + id);
        }
        return id;
    }
}
