package dev.capsule.server.metrics;

import io.vertx.core.json.JsonObject;
import java.time.Instant;

/**
 * One sample of a sandbox's resource use in E2B's {@code SandboxMetric} shape: {@code cpuUsedPct} is the share of
 * the sandbox's {@code cpuCount} CPUs used since the previous sample (0..100), memory and disk are bytes.
 */
public record SandboxMetric(String sandboxId, Instant timestamp, int cpuCount, double cpuUsedPct, long memUsed,
                            long memTotal, long memCache, long diskUsed, long diskTotal) {

    public JsonObject toJson() {
        return new JsonObject()
                .put("timestamp", timestamp.toString()) // deprecated in the spec, but the JS SDK reads it
                .put("timestampUnix", timestamp.getEpochSecond())
                .put("cpuCount", cpuCount)
                .put("cpuUsedPct", cpuUsedPct)
                .put("memUsed", memUsed)
                .put("memTotal", memTotal)
                .put("memCache", memCache)
                .put("diskUsed", diskUsed)
                .put("diskTotal", diskTotal);
    }
}
