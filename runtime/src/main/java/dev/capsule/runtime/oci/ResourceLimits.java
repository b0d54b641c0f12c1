package dev.capsule.runtime.oci;

import dev.capsule.runtime.Resources;

/**
 * The limits of one sandbox: CPU time as a quota of {@code cpuCount} CPUs, memory in MiB (swap not allowed:
 * memory+swap equals memory), the maximum number of tasks (processes and threads) against fork bombs, all cgroup
 * limits; and the size in MiB of the file system that holds its writes (its disk).
 */
public record ResourceLimits(int cpuCount, int memoryMB, int pidsMax, int diskSizeMB) {

    public static final int DEFAULT_PIDS_MAX = 1024;
    public static final long CPU_PERIOD_MICROS = 100_000;
    /** The smallest disk that holds an ext4 file system with a journal and room to write. */
    public static final int MIN_DISK_SIZE_MB = 16;

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
        if (diskSizeMB < MIN_DISK_SIZE_MB) {
            throw new IllegalArgumentException("diskSizeMB must be at least " + MIN_DISK_SIZE_MB + " (the oci driver "
                    + "gives each sandbox an ext4 file system of that size), was " + diskSizeMB);
        }
    }

    public static ResourceLimits of(Resources resources) {
        return new ResourceLimits(resources.cpuCount(), resources.memoryMB(), DEFAULT_PIDS_MAX,
                resources.diskSizeMB());
    }

    public long memoryBytes() {
        return memoryMB * 1024L * 1024L;
    }

    public long cpuQuotaMicros() {
        return cpuCount * CPU_PERIOD_MICROS;
    }
}
