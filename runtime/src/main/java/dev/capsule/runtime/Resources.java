package dev.capsule.runtime;

/** A sandbox's limits, from its template: virtual CPUs, memory and disk, as E2B's API states them. */
public record Resources(int cpuCount, int memoryMB, int diskSizeMB) {

    public Resources {
        if (cpuCount < 1 || memoryMB < 128 || diskSizeMB < 1) {
            throw new IllegalArgumentException("resources need cpuCount >= 1, memoryMB >= 128 and diskSizeMB >= 1; got "
                    + cpuCount + " CPUs, " + memoryMB + " MB memory, " + diskSizeMB + " MB disk");
        }
    }
}
