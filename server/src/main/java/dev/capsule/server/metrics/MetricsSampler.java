package dev.capsule.server.metrics;

import dev.capsule.runtime.ResourceUsage;
import dev.capsule.runtime.SandboxRuntime;
import dev.capsule.server.logging.LogContext;
import dev.capsule.server.store.Store;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.jdbi.v3.core.statement.StatementContext;

/**
 * Samples every running sandbox's resource use from the driver ({@link SandboxRuntime#usage}) at a fixed interval
 * (the caller schedules {@link #sampleRunning}) and keeps the series in the store: for the sandbox's life, then
 * for the retention window ({@link #prune}). CPU is a rate, so a sample needs the reading before it: the first
 * reading of a run only primes it — {@link #prime} takes that reading as soon as a sandbox is created or resumed,
 * so its first sample comes one interval later. Paused sandboxes report nothing (the driver gives no usage) and
 * lose their previous reading, so no rate spans a pause.
 *
 * <p>Sampling takes no lifecycle lock: it reads the store's list of running sandboxes and the driver's
 * accounting, both safe beside any transition (a sandbox killed meanwhile just yields no sample).
 */
public final class MetricsSampler {

    private static final System.Logger LOG = System.getLogger(MetricsSampler.class.getName());

    private final Store store;
    private final SandboxRuntime runtime;
    private final Clock clock;
    private final Map<String, ResourceUsage> previous = new ConcurrentHashMap<>();

    public MetricsSampler(Store store, SandboxRuntime runtime, Clock clock) {
        this.store = store;
        this.runtime = runtime;
        this.clock = clock;
    }

    /** Takes the reading a sandbox's first sample is computed from. */
    public void prime(String sandboxId) {
        LogContext.forSandbox(sandboxId, () -> {
            try {
                runtime.usage(sandboxId).ifPresent(u -> previous.put(sandboxId, u));
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.DEBUG, "first usage reading of sandbox " + sandboxId + " failed", e);
            }
        });
    }

    /** One pass: a sample of every running sandbox of this server's drivers, written in one transaction. Returns them. */
    public List<SandboxMetric> sampleRunning() {
        List<String> running = store.read(h -> h.createQuery("SELECT id FROM sandboxes WHERE state = 'running' AND runtime IN (<r>)")
                .bindList("r", runtime.drivers()).mapTo(String.class).list());
        previous.keySet().retainAll(Set.copyOf(running));
        List<SandboxMetric> samples = new ArrayList<>();
        for (String id : running) {
            LogContext.forSandbox(id, () -> sample(id).ifPresent(samples::add));
        }
        if (!samples.isEmpty()) {
            store.write(h -> {
                var batch = h.prepareBatch("""
                        INSERT INTO sandbox_metrics (sandbox_id, sampled_at, cpu_count, cpu_used_pct, mem_used, mem_total,
                          mem_cache, disk_used, disk_total)
                        VALUES (:s, :at, :cpus, :pct, :memUsed, :memTotal, :memCache, :diskUsed, :diskTotal)""");
                for (SandboxMetric m : samples) {
                    batch.bind("s", m.sandboxId()).bind("at", m.timestamp().toEpochMilli()).bind("cpus", m.cpuCount())
                            .bind("pct", m.cpuUsedPct()).bind("memUsed", m.memUsed()).bind("memTotal", m.memTotal())
                            .bind("memCache", m.memCache()).bind("diskUsed", m.diskUsed()).bind("diskTotal", m.diskTotal())
                            .add();
                }
                return batch.execute();
            });
        }
        return samples;
    }

    private Optional<SandboxMetric> sample(String id) {
        Optional<ResourceUsage> reading;
        try {
            reading = runtime.usage(id);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "reading the resource use of sandbox " + id + " failed", e);
            return Optional.empty();
        }
        if (reading.isEmpty()) {
            previous.remove(id); // paused or gone: the next run starts a new rate
            return Optional.empty();
        }
        ResourceUsage now = reading.get();
        ResourceUsage before = previous.put(id, now);
        if (before == null) return Optional.empty();
        long wallNanos = Duration.between(before.at(), now.at()).toNanos();
        if (wallNanos <= 0) return Optional.empty();
        double pct = 100.0 * (now.cpuUsageNanos() - before.cpuUsageNanos()) / ((double) wallNanos * now.cpuCount());
        pct = Math.round(Math.max(0, Math.min(100, pct)) * 100) / 100.0;
        // the sample's time is the clock's (the store's time base), the rate the driver's own interval
        return Optional.of(new SandboxMetric(id, Instant.ofEpochMilli(clock.millis()), now.cpuCount(), pct,
                now.memUsed(), now.memTotal(), now.memCache(), now.diskUsed(), now.diskTotal()));
    }

    /** The sandbox's samples with {@code from <= timestamp <= to}, oldest first. */
    public List<SandboxMetric> series(String sandboxId, Instant from, Instant to) {
        return store.read(h -> h.createQuery("""
                SELECT * FROM sandbox_metrics WHERE sandbox_id = :s AND sampled_at >= :from AND sampled_at <= :to
                ORDER BY sampled_at""")
                .bind("s", sandboxId).bind("from", from.toEpochMilli()).bind("to", to.toEpochMilli())
                .map(MetricsSampler::row).list());
    }

    /** The newest sample of each of {@code sandboxIds} that has one. */
    public Map<String, SandboxMetric> latest(List<String> sandboxIds) {
        Map<String, SandboxMetric> out = new LinkedHashMap<>();
        if (sandboxIds.isEmpty()) return out;
        store.read(h -> h.createQuery("""
                SELECT m.* FROM sandbox_metrics m WHERE m.sandbox_id IN (<ids>) AND m.sampled_at =
                  (SELECT MAX(l.sampled_at) FROM sandbox_metrics l WHERE l.sandbox_id = m.sandbox_id)""")
                .bindList("ids", sandboxIds).map(MetricsSampler::row).list())
                .forEach(m -> out.put(m.sandboxId(), m));
        return out;
    }

    /** Deletes the samples of sandboxes that are gone and that are older than {@code retention}. */
    public int prune(Duration retention) {
        long cutoff = clock.millis() - retention.toMillis();
        return store.write(h -> h.createUpdate("""
                DELETE FROM sandbox_metrics WHERE sampled_at < :cutoff AND sandbox_id NOT IN (SELECT id FROM sandboxes)""")
                .bind("cutoff", cutoff).execute());
    }

    private static SandboxMetric row(ResultSet rs, StatementContext c) throws SQLException {
        return new SandboxMetric(rs.getString("sandbox_id"), Instant.ofEpochMilli(rs.getLong("sampled_at")),
                rs.getInt("cpu_count"), rs.getDouble("cpu_used_pct"), rs.getLong("mem_used"), rs.getLong("mem_total"),
                rs.getLong("mem_cache"), rs.getLong("disk_used"), rs.getLong("disk_total"));
    }
}
