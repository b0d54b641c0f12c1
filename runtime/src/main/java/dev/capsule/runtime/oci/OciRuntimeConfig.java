package dev.capsule.runtime.oci;

import dev.capsule.runtime.network.NetworkConfig;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * How {@link OciRuntime} runs sandboxes on this host.
 *
 * @param dataDir      per-sandbox files ({@code <dataDir>/sandboxes/<id>}: overlay upper dir, config, console log)
 * @param cacheDir     built templates ({@code templates/}) and runtime bundles ({@code bundles/}), shared by all
 *                     data directories of the machine
 * @param network      the sandbox network layout (namespaces, veths, address pool, nameservers)
 * @param envdJar      the envd-only jar ({@code envd/target/capsule-envd.jar}) put into the runtime bundle
 * @param execHelper   envd's static exec helper ({@code envd/target/capsule-exec}) put into the runtime bundle
 * @param runcRoot     runc's state directory; only this driver's containers live there
 * @param cgroupParent cgroup under which each sandbox gets {@code <parent>/<id>} (relative: under the server's)
 * @param pidsMax      tasks (processes and threads) one sandbox may have, against fork bombs
 * @param startTimeout how long {@link OciRuntime#start} waits for envd's {@code /health}
 */
public record OciRuntimeConfig(Path dataDir, Path cacheDir, NetworkConfig network, Path envdJar, Path execHelper,
                               Path runcRoot, String cgroupParent, int pidsMax, Duration startTimeout) {

    public static final Path DEFAULT_DATA_DIR = Path.of("/var/lib/capsule");
    public static final Path DEFAULT_CACHE_DIR = Path.of("/var/cache/capsule");
    public static final Duration DEFAULT_START_TIMEOUT = Duration.ofSeconds(60);

    public OciRuntimeConfig {
        if (dataDir == null || cacheDir == null || network == null || envdJar == null || execHelper == null
                || runcRoot == null || cgroupParent == null || startTimeout == null) {
            throw new IllegalArgumentException("every oci runtime setting is required (none may be null)");
        }
        if (pidsMax < 16) {
            throw new IllegalArgumentException("pidsMax must be at least 16 (the init and envd's JVM need some), was "
                    + pidsMax);
        }
        if (startTimeout.isNegative() || startTimeout.isZero()) {
            throw new IllegalArgumentException("startTimeout must be positive, was " + startTimeout);
        }
    }

    /** The given directories and envd build, with default runc root, cgroup, pids limit and start timeout. */
    public static OciRuntimeConfig of(Path dataDir, Path cacheDir, NetworkConfig network, Path envdJar,
                                      Path execHelper) {
        return new OciRuntimeConfig(dataDir, cacheDir, network, envdJar, execHelper, RuncRuntime.DEFAULT_RUNC_ROOT,
                RuncRuntime.DEFAULT_CGROUP_PARENT, ResourceLimits.DEFAULT_PIDS_MAX, DEFAULT_START_TIMEOUT);
    }

    /**
     * Defaults for this machine: {@code /var/lib/capsule}, {@code $CAPSULE_CACHE_DIR} or {@code /var/cache/capsule}, {@link NetworkConfig#defaults()}, and envd's build found by {@link #envdBuildDir()}.
     */
    public static OciRuntimeConfig defaults() {
        Path envd = envdBuildDir();
        return of(DEFAULT_DATA_DIR, cacheDirFromEnvironment(), NetworkConfig.defaults(),
                envd.resolve("capsule-envd.jar"), envd.resolve("capsule-exec"));
    }

    /** {@code $CAPSULE_CACHE_DIR}, or {@code /var/cache/capsule}. */
    public static Path cacheDirFromEnvironment() {
        String dir = System.getenv("CAPSULE_CACHE_DIR");
        return dir == null || dir.isBlank() ? DEFAULT_CACHE_DIR : Path.of(dir);
    }

    /**
     * Where envd's build output is: {@code $CAPSULE_HOME/envd/target} when CAPSULE_HOME is set, else the
     * {@code envd/target} of the first directory at or above the working directory that has a built
     * {@code capsule-envd.jar} (the repository root when run from it or a module). Falls back to
     * {@code envd/target} under the working directory, which {@link OciRuntime#start} then reports as missing.
     */
    public static Path envdBuildDir() {
        String home = System.getenv("CAPSULE_HOME");
        if (home != null && !home.isBlank()) {
            return Path.of(home, "envd", "target").toAbsolutePath();
        }
        Path start = Path.of("").toAbsolutePath();
        for (Path dir = start; dir != null; dir = dir.getParent()) {
            Path candidate = dir.resolve("envd/target");
            if (Files.isRegularFile(candidate.resolve("capsule-envd.jar"))) {
                return candidate;
            }
        }
        return start.resolve("envd/target");
    }

    public OciRuntimeConfig withDirectories(Path newDataDir, Path newCacheDir) {
        return new OciRuntimeConfig(newDataDir, newCacheDir, network, envdJar, execHelper, runcRoot, cgroupParent,
                pidsMax, startTimeout);
    }

    public OciRuntimeConfig withNetwork(NetworkConfig newNetwork) {
        return new OciRuntimeConfig(dataDir, cacheDir, newNetwork, envdJar, execHelper, runcRoot, cgroupParent,
                pidsMax, startTimeout);
    }

    public OciRuntimeConfig withRunc(Path newRuncRoot, String newCgroupParent) {
        return new OciRuntimeConfig(dataDir, cacheDir, network, envdJar, execHelper, newRuncRoot, newCgroupParent,
                pidsMax, startTimeout);
    }

    public OciRuntimeConfig withStartTimeout(Duration timeout) {
        return new OciRuntimeConfig(dataDir, cacheDir, network, envdJar, execHelper, runcRoot, cgroupParent,
                pidsMax, timeout);
    }

    public OciRuntimeConfig withPidsMax(int max) {
        return new OciRuntimeConfig(dataDir, cacheDir, network, envdJar, execHelper, runcRoot, cgroupParent, max,
                startTimeout);
    }

    public OciRuntimeConfig withEnvd(Path jar, Path helper) {
        return new OciRuntimeConfig(dataDir, cacheDir, network, jar, helper, runcRoot, cgroupParent, pidsMax,
                startTimeout);
    }
}
