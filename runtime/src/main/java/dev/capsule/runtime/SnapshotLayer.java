package dev.capsule.runtime;

/**
 * A snapshot as the driver stored it: the sandbox's filesystem (and memory where the driver can keep it) under
 * {@code snapshotId}, usable as a {@link SandboxSpec#templateId()}; {@code sizeBytes} is what it takes on disk.
 */
public record SnapshotLayer(String snapshotId, long sizeBytes, boolean memoryKept) {}
