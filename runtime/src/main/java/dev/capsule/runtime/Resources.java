package dev.capsule.runtime;

/**
 * What a sandbox may use, as E2B's API states a template's resources: virtual CPUs (a cgroup CPU quota), memory in
 * MiB (the cgroup limit; no swap on top of it) and disk in MiB (the size of its writable layer: writing past it
 * fails with ENOSPC inside the sandbox). Templates carry their defaults; a sandbox gets its template's. Defaults
 * follow E2B's base sandbox: 2 vCPUs, 512 MiB.
 */
public record Resources(int cpuCount, int memoryMB, int diskSizeMB) {

    public static final Resources DEFAULT = new Resources(2, 512, 1024);

    public Resources {
        if (cpuCount < 1 || cpuCount > 64) {
            throw new IllegalArgumentException("cpuCount must be between 1 and 64, was " + cpuCount);
        }
        if (memoryMB < 64) {
            throw new IllegalArgumentException("memoryMB must be at least 64, was " + memoryMB);
        }
        if (diskSizeMB < 1) {
            throw new IllegalArgumentException("diskSizeMB must be at least 1, was " + diskSizeMB);
        }
    }
}
