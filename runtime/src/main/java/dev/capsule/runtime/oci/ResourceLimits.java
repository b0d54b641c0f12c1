package dev.capsule.runtime.oci;

import dev.capsule.runtime.Resources;

/**
 * The cgroup limits of one sandbox: CPU time as a quota of {@code cpuCount} CPUs, memory in MiB (swap not
 * allowed: memory+swap equals memory), and the maximum number of tasks (processes and threads) against fork bombs.
 */
public record ResourceLimits(int cpuCount, int memoryMB, int pidsMax) {

    public static final int DEFAULT_PIDS_MAX = 1024;
    public static final long CPU_PERIOD_MICROS = 100_000;

    public ResourceLimits {
        if (cpuCount < 1) {
            throw new IllegalArgumentException("cpuCount must be at least 1, was " + cpuCount);
        }
        if (memoryMB < 16) {
            throw new IllegalArgumentException("memoryMB must be at least 16, was " + memoryMB);
        }
        if (pidsMax < 16) {
            throw new IllegalArgumentException("pidsMax must be at least 16 (the init and the JVM need some), was " + pidsMax);
        }
    }

    public static ResourceLimits of(Resources resources) {
        return new ResourceLimits(resources.cpuCount(), resources.memoryMB(), DEFAULT_PIDS_MAX);
    }

    public long memoryBytes() {
        return memoryMB * 1024L * 1024L;
    }

    public long cpuQuotaMicros() {
        return cpuCount * CPU_PERIOD_MICROS;
    }
}
