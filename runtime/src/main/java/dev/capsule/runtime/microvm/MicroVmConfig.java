package dev.capsule.runtime.microvm;

import dev.capsule.runtime.network.NetworkConfig;
import dev.capsule.runtime.oci.OciRuntimeConfig;

import java.nio.file.Path;
import java.time.Duration;

/**
 * How {@link MicroVmRuntime} runs sandboxes on this host.
 *
 * @param dataDir      per-sandbox files ({@code <dataDir>/microvm/sandboxes/<id>}: disk overlay, paused memory,
 *                     QEMU's sockets and logs) and snapshots ({@code <dataDir>/microvm/snapshots})
 * @param cacheDir     shared by all data directories: templates and runtime bundles (as for the oci driver), the
 *                     extracted guest kernel packages ({@code kernels/}, see scripts/setup.sh) and what this driver
 *                     builds from them ({@code microvm/}: kernel, disk images, template snapshots)
 * @param network      the sandbox network layout (the same as the oci driver's: one namespace per sandbox)
 * @param envdJar      the envd-only jar put into the runtime bundle
 * @param execHelper   envd's static exec helper put into the runtime bundle
 * @param qemu         the QEMU system emulator to run
 * @param accelerator  QEMU's {@code -accel}: {@code tcg} (software emulation, works everywhere) or {@code kvm}
 * @param startTimeout how long a restore may take until envd answers {@code /health}
 * @param bootTimeout  how long a cold boot (a template snapshot's first boot, a resume without memory) may take
 *                     until envd answers: the JVM's first start under TCG takes tens of seconds
 */
public record MicroVmConfig(Path dataDir, Path cacheDir, NetworkConfig network, Path envdJar, Path execHelper,
                            String qemu, String accelerator, Duration startTimeout, Duration bootTimeout) {

    public static final String DEFAULT_QEMU = "qemu-system-x86_64";
    public static final Duration DEFAULT_START_TIMEOUT = Duration.ofSeconds(60);
    public static final Duration DEFAULT_BOOT_TIMEOUT = Duration.ofSeconds(300);

    public MicroVmConfig {
        if (dataDir == null || cacheDir == null || network == null || envdJar == null || execHelper == null
                || qemu == null || accelerator == null || startTimeout == null || bootTimeout == null) {
            throw new IllegalArgumentException("every microvm runtime setting is required (none may be null)");
        }
        if (!accelerator.equals("tcg") && !accelerator.equals("kvm")) {
            throw new IllegalArgumentException("accelerator must be tcg or kvm, was " + accelerator);
        }
        if (startTimeout.isNegative() || startTimeout.isZero() || bootTimeout.isNegative() || bootTimeout.isZero()) {
            throw new IllegalArgumentException("timeouts must be positive, were " + startTimeout + " and " + bootTimeout);
        }
    }

    /** This machine's defaults, as {@link OciRuntimeConfig#defaults()} finds them, with TCG. */
    public static MicroVmConfig defaults() {
        OciRuntimeConfig oci = OciRuntimeConfig.defaults();
        return new MicroVmConfig(oci.dataDir(), oci.cacheDir(), oci.network(), oci.envdJar(), oci.execHelper(),
                DEFAULT_QEMU, "tcg", DEFAULT_START_TIMEOUT, DEFAULT_BOOT_TIMEOUT);
    }

    public MicroVmConfig withDirectories(Path newDataDir, Path newCacheDir) {
        return new MicroVmConfig(newDataDir, newCacheDir, network, envdJar, execHelper, qemu, accelerator,
                startTimeout, bootTimeout);
    }

    public MicroVmConfig withNetwork(NetworkConfig newNetwork) {
        return new MicroVmConfig(dataDir, cacheDir, newNetwork, envdJar, execHelper, qemu, accelerator,
                startTimeout, bootTimeout);
    }

    public MicroVmConfig withEnvd(Path jar, Path helper) {
        return new MicroVmConfig(dataDir, cacheDir, network, jar, helper, qemu, accelerator, startTimeout,
                bootTimeout);
    }

    public MicroVmConfig withTimeouts(Duration start, Duration boot) {
        return new MicroVmConfig(dataDir, cacheDir, network, envdJar, execHelper, qemu, accelerator, start, boot);
    }

    /** Where this driver keeps its files in the data directory. */
    Path home() {
        return dataDir.resolve("microvm");
    }
}
