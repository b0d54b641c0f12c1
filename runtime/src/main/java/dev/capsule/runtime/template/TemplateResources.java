package dev.capsule.runtime.template;

/**
 * What a sandbox made from a template may use: CPUs (cgroup quota), memory in MiB (limit, no swap) and disk in
 * MiB (the size of its writable layer). Defaults follow E2B's base sandbox: 2 vCPUs, 512 MiB.
 */
public record TemplateResources(int cpuCount, int memoryMB, int diskSizeMB) {

    public static final TemplateResources DEFAULT = new TemplateResources(2, 512, 1024);

    public TemplateResources {
        if (cpuCount < 1 || cpuCount > 64) {
            throw new IllegalArgumentException("cpuCount must be between 1 and 64, was " + cpuCount);
        }
        if (memoryMB < 64) {
            throw new IllegalArgumentException("memoryMB must be at least 64, was " + memoryMB);
        }
        if (diskSizeMB < 128) {
            throw new IllegalArgumentException("diskSizeMB must be at least 128, was " + diskSizeMB);
        }
    }
}
