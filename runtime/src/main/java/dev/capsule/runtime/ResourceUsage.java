package dev.capsule.runtime;

import java.time.Instant;

/**
 * One sample of a sandbox's resource use from the driver's own accounting (cgroups for oci). {@code cpuUsageNanos}
 * is cumulative CPU time since the sandbox started (a rate comes from two samples); memory and disk are bytes.
 */
public record ResourceUsage(Instant at, int cpuCount, long cpuUsageNanos, long memUsed, long memTotal, long memCache,
                            long diskUsed, long diskTotal) {}
